import { fork, type ChildProcess } from 'node:child_process'

// The bench driver talks to each server and to the load generator over Node's IPC channel:
// one request, one reply, correlated by id.

interface Request { id: number, cmd: string, args: unknown }
interface Reply { id: number, result?: unknown, error?: string }
interface Ready { ready: Record<string, unknown> }

type Handler = (args: any) => unknown
export type Handlers = Record<string, Handler>

// Every server runs on the same V8 flags: those this project's own processes set (bin/v8-flags.ts)
// and docs/production.md asks an embedding app to pass. Without it, V8 could make a burst of
// publishes allocate straight into the old generation for the rest of a server's life, in some
// runs and not others (docs/benchmarks.md). --expose-gc: servers collect before a measured window.
export const SERVER_NODE_FLAGS = ['--expose-gc', '--no-allocation-site-pretenuring']

const running = new Set<ChildProcess>()
// Whatever happens to the driver, no server or client process outlives it.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** A child process that answers commands. */
export class Peer {
  #next = 0
  readonly #pending = new Map<number, { resolve: (value: any) => void, reject: (err: Error) => void }>()
  readonly exited: Promise<number | null>
  info: Record<string, unknown> = {}

  constructor (readonly name: string, readonly child: ChildProcess) {
    child.on('message', (message: Reply) => {
      const pending = this.#pending.get(message.id)
      if (pending === undefined) return
      this.#pending.delete(message.id)
      if (message.error !== undefined) pending.reject(new Error(`${name}: ${message.error}`))
      else pending.resolve(message.result)
    })
    // A dead child's pending and later calls reject; its IPC errors must not crash the driver.
    child.on('error', () => {})
    this.exited = new Promise((resolve) => child.once('exit', (code) => {
      for (const { reject } of this.#pending.values()) reject(new Error(`${name} exited with ${code}`))
      this.#pending.clear()
      resolve(code)
    }))
  }

  /** Forks `script` and waits for its ready message. */
  static async spawn (name: string, script: string, args: string[] = [], execArgv: string[] = []): Promise<Peer> {
    const child = fork(script, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const peer = new Peer(name, child)
    running.add(child)
    child.once('exit', () => running.delete(child))
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: Ready): void => {
        if (message?.ready === undefined) return
        child.off('message', onMessage)
        peer.info = message.ready
        resolve()
      }
      child.on('message', onMessage)
      peer.exited.then((code) => reject(new Error(`${name} exited with ${code} before it was ready`)))
    })
    return peer
  }

  call<T = unknown> (cmd: string, args: unknown = {}): Promise<T> {
    const id = ++this.#next
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) return reject(new Error(`${this.name} is not running`))
      this.#pending.set(id, { resolve, reject })
      this.child.send({ id, cmd, args } satisfies Request)
    })
  }

  /** Asks the child to close and waits for it to exit; kills it after `timeout` ms. */
  async stop (timeout = 10000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.call('close').catch(() => {})
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeout)
    await this.exited
    clearTimeout(timer)
  }
}

/** Child side: answers the driver's commands with `handlers`, then says it is ready. */
export function serve (handlers: Handlers, ready: Record<string, unknown>): void {
  process.on('message', async (message: Request) => {
    let reply: Reply
    try {
      const handler = handlers[message.cmd]
      if (handler === undefined) throw new Error(`unknown command ${message.cmd}`)
      reply = { id: message.id, result: (await handler(message.args)) ?? null }
    } catch (err) {
      reply = { id: message.id, error: (err as Error).stack ?? String(err) }
    }
    process.send!(reply)
  })
  process.send!({ ready } satisfies Ready)
}

/** The value following `--name` on the command line. */
export function argument (name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`)
  return index < 0 ? undefined : process.argv[index + 1]
}
