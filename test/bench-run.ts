import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'

// Runs `npm run bench -- <args>` (or another bench `script`) for a test, as a user would: its
// output and its results JSON.

// The bench's processes must not inherit tap's loader, nor count in coverage: tap re-adds its
// process tracking to every spawn, but leaves a coverage switch that is set explicitly. A
// REDIS_URL of the test's environment must not redirect the scale scenario to a shared Redis.
function benchEnv (): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) =>
    !/^(NODE_OPTIONS|NODE_V8_COVERAGE|TAP|_TAPJS_|REDIS_URL)/.test(name)))
  return { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
}

export async function runBench (t: Test, args: string[], script = 'bench'): Promise<{ code: number | null, output: string, results: any }> {
  const dir = await mkdtemp(join(tmpdir(), 'notify-edge-bench-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const out = join(dir, 'results.json')
  const child = spawn('npm', ['run', '--silent', script, '--', ...args, '--out', out], { env: benchEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.teardown(() => { child.kill() })
  const [code] = await once(child, 'exit') as [number | null]
  if (code !== 0) t.comment(output)
  return { code, output, results: code === 0 ? JSON.parse(await readFile(out, 'utf8')) : null }
}
