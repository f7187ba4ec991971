// RabbitMQ for tests. `sharedBroker(t)` uses AMQP_URL (or 127.0.0.1:5672) with exchange and queue
// names unique to the test, deleted at the end; `rabbitServer(t)` spawns a private rabbitmq-server
// that the test may kill and restart. The shared broker is never stopped or purged.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { Connection, type Envelope, type Publisher } from 'rabbitmq-client'
import { freePort } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

export const AMQP_URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672'

export interface AmqpNames { exchange: string, queue: string, deadLetterExchange: string, deadLetterQueue: string }

/** Names unique to this call; the exchanges and queues are deleted when the test ends. */
export function amqpNames (t: Test, url = AMQP_URL): AmqpNames {
  const id = `t-${randomBytes(5).toString('hex')}`
  const names = { exchange: `${id}.x`, queue: `${id}.q`, deadLetterExchange: `${id}.dlx`, deadLetterQueue: `${id}.dlq` }
  t.teardown(async () => {
    const admin = new Connection({ url, retryHigh: 200 })
    admin.on('error', () => {})
    try {
      await admin.onConnect(2000)
      await admin.queueDelete({ queue: names.queue })
      await admin.queueDelete({ queue: names.deadLetterQueue })
      await admin.exchangeDelete({ exchange: names.exchange })
      await admin.exchangeDelete({ exchange: names.deadLetterExchange })
    } catch {
      // A broker that is down at teardown (private ones are) keeps nothing of ours anyway.
    } finally {
      admin.unsafeDestroy()
    }
  })
  return names
}

export interface Producer {
  connection: Connection
  /** Publishes with confirms to `exchange`; `body` is sent as given (a Buffer or string goes out raw). */
  send (routingKey: string, body: unknown, envelope?: Envelope): Promise<void>
}

/** A confirming publisher, as a producer service would hold; closed when the test ends. */
export function producer (t: Test, exchange: string, url = AMQP_URL): Producer {
  const connection = new Connection({ url, retryLow: 50, retryHigh: 200 })
  connection.on('error', () => {})
  const publisher: Publisher = connection.createPublisher({ confirm: true, maxAttempts: 5, exchanges: [{ exchange, type: 'topic', durable: true }] })
  t.teardown(async () => {
    await publisher.close()
    await connection.close()
  })
  return {
    connection,
    send: (routingKey, body, envelope = {}) => publisher.send({ exchange, routingKey, ...envelope }, body)
  }
}

/** Messages in `queue` now (not counting unacknowledged ones). */
export async function queueDepth (connection: Connection, queue: string): Promise<number> {
  return (await connection.queueDeclare({ queue, passive: true })).messageCount
}

/** Takes every message in `queue` (basic.get, acked), for tests to inspect dead letters. */
export async function drainQueue (connection: Connection, queue: string): Promise<Array<{ routingKey: string, body: unknown, messageId?: string }>> {
  const taken = []
  for (;;) {
    const msg = await connection.basicGet({ queue, noAck: true })
    if (msg === undefined) return taken
    taken.push({ routingKey: msg.routingKey, body: msg.body, messageId: msg.messageId })
  }
}

export interface RabbitServer {
  url: string
  /** Kills the broker (SIGKILL, as a crash would) and waits until its port is free. */
  stop (): Promise<void>
  /** Starts it again on the same port and data directory; resolves once it accepts connections. */
  start (): Promise<void>
}

const START_TIMEOUT = 60_000
const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) killGroup(child) })

function killGroup (child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {}
}

async function portOpen (port: number): Promise<boolean> {
  const socket = new Socket()
  try {
    socket.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    return true
  } catch {
    return false
  } finally {
    socket.destroy()
  }
}

/**
 * A private rabbitmq-server (about 4 s to start). It drops to the `rabbitmq` user, so its
 * directory belongs to that user; every path it writes is inside that directory. `su
 * --session-command` keeps the broker in the process group we spawn, so stop() kills it by group.
 */
export async function rabbitServer (t: Test): Promise<RabbitServer> {
  const dir = mkdtempSync(join(tmpdir(), 'notify-rabbit-'))
  const uid = Number(execFileSync('id', ['-u', 'rabbitmq']).toString())
  const gid = Number(execFileSync('id', ['-g', 'rabbitmq']).toString())
  chownSync(dir, uid, gid)
  const [port, dist] = [await freePort(), await freePort()]
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_NODENAME: `notify-${randomBytes(4).toString('hex')}@localhost`,
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_LOGS: '-',
    RABBITMQ_FEATURE_FLAGS_FILE: join(dir, 'feature_flags'),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, 'plugins'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'none')
  }
  let child: ChildProcess | null = null

  async function start (): Promise<void> {
    if (child !== null) return
    const spawned = spawn('su', ['rabbitmq', '-s', '/bin/sh', '-p', '--session-command', '/usr/lib/rabbitmq/bin/rabbitmq-server'], {
      env, detached: true, stdio: ['ignore', 'pipe', 'pipe']
    })
    running.add(spawned)
    spawned.once('exit', () => running.delete(spawned))
    child = spawned
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`rabbitmq-server not ready within ${START_TIMEOUT} ms:\n${output}`)), START_TIMEOUT)
      spawned.once('exit', (code) => { clearTimeout(timer); reject(new Error(`rabbitmq-server exited (${code}):\n${output}`)) })
      spawned.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
      spawned.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (!output.includes('Server startup complete')) return
        clearTimeout(timer)
        spawned.removeAllListeners('exit')
        resolve()
      })
    })
  }

  async function stop (): Promise<void> {
    if (child === null) return
    const killed = child
    killGroup(killed)
    // Polled, not awaited as an 'exit' event: under tap's process tracking the child's handle may
    // not hold the event loop, which then drained mid-teardown ("test unfinished"); and a child
    // killed by a signal keeps exitCode null.
    while (killed.exitCode === null && killed.signalCode === null) await new Promise((resolve) => setTimeout(resolve, 20))
    child = null
    // The broker is a grandchild: its listening socket is gone only once it has died too.
    while (await portOpen(port)) await new Promise((resolve) => setTimeout(resolve, 20))
  }

  t.teardown(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  return { url: `amqp://guest:guest@127.0.0.1:${port}`, stop, start }
}
