import { spawnSync } from 'node:child_process'
import t from 'tap'

// V8 ignores a flag it does not know, saying so only on stderr: a misspelt or retired flag would
// leave pretenuring on without a word. So the flag is set here as serve() sets it, in a process of
// this very Node, and that process must say nothing.

t.test('tuneV8ForEdge sets a flag this Node knows, silently', async (t) => {
  const module = new URL('../bin/v8-flags.ts', import.meta.url).href
  const child = spawnSync(process.execPath, [
    ...process.execArgv,
    '--input-type=module',
    '--eval', `import { tuneV8ForEdge } from ${JSON.stringify(module)}; tuneV8ForEdge(); process.stdout.write('set')`
  ], { encoding: 'utf8' })
  t.equal(child.status, 0, child.stderr)
  t.equal(child.stdout, 'set')
  t.equal(child.stderr, '', 'V8 reports no unrecognized flag')
})

t.test('the flag is one node accepts on its command line, as docs/production.md tells apps to pass it', async (t) => {
  const child = spawnSync(process.execPath, ['--no-allocation-site-pretenuring', '-e', '0'], { encoding: 'utf8' })
  t.equal(child.status, 0, child.stderr)
  t.equal(child.stderr, '')
})
