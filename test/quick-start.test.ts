// The README's quick start, run as pasted against a started example app: the shell blocks marked
// `<!-- quick-start: … -->`, with the app's own address in place of 127.0.0.1:3000.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { exampleProcess } from './example-process.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** The ```sh block right below `<!-- quick-start: name -->` in the README. */
export function quickStartBlock (markdown: string, name: string): string {
  const lines = markdown.split('\n')
  const marker = lines.indexOf(`<!-- quick-start: ${name} -->`)
  if (marker === -1 || lines[marker + 1] !== '```sh') throw new Error(`README.md has no sh block marked quick-start: ${name}`)
  const end = lines.indexOf('```', marker + 2)
  return lines.slice(marker + 2, end).join('\n')
}

function run (script: string): { done: Promise<number | null>, stdout: () => string, stderr: () => string, ready: Promise<void> } {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  const ready = new Promise<void>((resolve) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      if (stderr.includes('ready')) resolve()
    })
  })
  const done = once(child, 'exit').then(([code]) => code as number | null)
  return { done, stdout: () => stdout, stderr: () => stderr, ready }
}

t.test('the README\'s quick start works as pasted: log in, take a ticket, listen, publish', async (t) => {
  const app = await exampleProcess(t, {})
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const address = new URL(app.http).host
  const here = (block: string): string => block.replaceAll('127.0.0.1:3000', address)

  const listen = run(here(quickStartBlock(readme, 'listen')))
  await Promise.race([listen.ready, listen.done.then((code) => { throw new Error(`the listener exited (${code}): ${listen.stderr()}`) })])
  const publish = run(here(quickStartBlock(readme, 'publish')))
  t.equal(await publish.done, 0, publish.stderr())
  t.match(JSON.parse(publish.stdout()), { id: String, online: true }, 'the publish answers as the README says')

  t.equal(await listen.done, 0, listen.stderr())
  const frames = listen.stdout().trim().split('\n').map((line) => JSON.parse(line) as { event: string, stream?: string, data?: unknown })
  t.same(frames.map((frame) => frame.event), ['welcome', 'subscribed', 'message'])
  t.match(frames[2], { stream: 'order', data: { orderId: '42', status: 'placed' } })
})

t.test('a missing block is a clear error', async (t) => {
  t.throws(() => quickStartBlock('# nothing here', 'listen'), /no sh block marked quick-start: listen/)
})
