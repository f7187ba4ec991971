// `npm run start:split`: the example as three processes on one Redis (SPEC section 11): the auth
// service, the order service (a publisher, no sockets) and the dedicated edge serving the page.
// SIGINT/SIGTERM is passed on to all three; if one exits, the others are stopped.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

// From the sources (tests) this runs as .ts and so must the children, with the same loader.
const SERVER = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './server.ts' : './server.js', import.meta.url))
const ROLES = ['auth', 'orders', 'edge'] as const

const children = new Map<string, ChildProcess>()
let stopping = false

function stopAll (signal: NodeJS.Signals): void {
  stopping = true
  for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill(signal)
}

for (const role of ROLES) {
  const child = spawn(process.execPath, [...process.execArgv, SERVER, role], { stdio: 'inherit' })
  children.set(role, child)
  child.on('exit', (code, signal) => {
    children.delete(role)
    if (!stopping) {
      process.stderr.write(`start:split: the ${role} process exited (${code ?? signal}); stopping the others\n`)
      process.exitCode = 1
      stopAll('SIGTERM')
    }
  })
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stopAll('SIGTERM'))
