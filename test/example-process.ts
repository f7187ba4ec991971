// Runs the example app as a separate OS process, from its TypeScript source through tap's loader.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { logCapture, type LogLine } from './log-capture.js'

type Test = { teardown: (fn: () => unknown) => void }

export interface ExampleProcess {
  http: string
  ws: string
  pid: number
  child: ChildProcess
  /** Everything it wrote so far, stdout and stderr. */
  output (): string
  /** SIGTERM, then waits for the exit; resolves with the exit code. */
  stop (): Promise<number | null>
  /** Resolves with the first log line (already written or still to come) whose `msg` contains `text`. */
  logged (text: string, timeout?: number): Promise<LogLine>
}

const running = new Set<ChildProcess>()
// A test process that dies without its teardown must not leave apps behind.
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const START_TIMEOUT = 30_000

/** Starts `example-app/server.ts` with `env` (PORT defaults to 0) and waits until it listens. */
export async function exampleProcess (t: Test, env: Record<string, string>): Promise<ExampleProcess> {
  return serverProcess(t, process.execPath, ['--import', '@tapjs/typescript/import', 'example-app/server.ts'], { TS_NODE_TRANSPILE_ONLY: '1', ...env })
}

/** Starts `command` (a Fastify server logging at info) with `env`, PORT 0 by default, and waits until it listens. */
export async function serverProcess (t: Test, command: string, args: string[], env: Record<string, string>, cwd = ROOT): Promise<ExampleProcess> {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  running.add(child)
  const exited = once(child, 'exit') as Promise<[number | null]>
  exited.then(() => running.delete(child))
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    return (await exited)[0]
  }
  t.teardown(stop)

  let output = ''
  const log = logCapture()
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  // Fastify logs the address it bound, so PORT=0 works: no port has to be guessed free.
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} ${args.join(' ')} not listening within ${START_TIMEOUT} ms:\n${output}`)), START_TIMEOUT)
    exited.then(([code]) => {
      clearTimeout(timer)
      reject(new Error(`${command} ${args.join(' ')} exited (${code}) before listening:\n${output}`))
    })
    createInterface({ input: child.stdout }).on('line', (line) => {
      output += `${line}\n`
      // The app logs JSON lines; anything else (a stack trace) is kept in `output` only.
      if (line.startsWith('{')) log.stream.write(line)
      const match = /Server listening at (http:\/\/[\d.:]+)/.exec(line)
      if (match === null) return
      clearTimeout(timer)
      resolve(match[1])
    })
  })
  return { http: address, ws: address.replace(/^http/, 'ws'), pid: child.pid!, child, stop, output: () => output, logged: (text, timeout) => log.next(text, timeout) }
}

/** A JWT from the example app's demo login. */
export async function login (http: string, user: string): Promise<string> {
  const res = await fetch(`${http}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
  if (res.status !== 200) throw new Error(`login: ${res.status}`)
  return ((await res.json()) as { token: string }).token
}
