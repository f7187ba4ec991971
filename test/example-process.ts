// The example app in a child process, from its TypeScript sources (through the loader this test
// process runs with, so no build is needed), for tests of signals and of losing a process.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { API_KEY, SECRET } from './helpers.js'

const SERVER = fileURLToPath(new URL('../example-app/server.ts', import.meta.url))

export interface ExampleProcess {
  child: ChildProcess
  http: string
  ws: string
}

/** Starts the example app on a free port; resolves once it listens. Killed when the test ends. */
export async function exampleProcess (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string> = {}): Promise<ExampleProcess> {
  const child = spawn(process.execPath, [...process.execArgv, SERVER], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout!.setEncoding('utf8')
  const http = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`example app exited (${code}):\n${output}`)))
    child.stdout!.on('data', (chunk: string) => {
      output += chunk
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match !== null) resolve(match[1])
    })
  })
  child.removeAllListeners('exit')
  child.stdout!.removeAllListeners('data').resume()
  return { child, http, ws: http.replace('http:', 'ws:') }
}

/** A JWT from the example app's demo login. */
export async function login (http: string, user: string): Promise<string> {
  const res = await fetch(`${http}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
  if (res.status !== 200) throw new Error(`login: ${res.status}`)
  return ((await res.json()) as { token: string }).token
}
