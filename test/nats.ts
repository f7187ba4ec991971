// NATS JetStream for tests. `natsNames(t)` gives a stream, consumer and subject prefix unique to
// the test on the shared server at NATS_URL (or 127.0.0.1:4222), and deletes them at teardown;
// `natsServer(t)` spawns a private nats-server with JetStream on a free port that the test may
// kill and restart (its store directory survives the restart). The shared server is never stopped.

import { spawn, type ChildProcess } from 'node:child_process'

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { connect, headers, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { freePort, kill, until } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

export const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'

export interface NatsNames { stream: string, consumer: string, subjectPrefix: string, deadLetterStream: string }

/** Names unique to this test; the streams are deleted at teardown. */
export function natsNames (t: Test, url = NATS_URL): NatsNames {
  const id = randomBytes(5).toString('hex')
  const names = { stream: `t-${id}`, consumer: `t-${id}-edge`, subjectPrefix: `t${id}`, deadLetterStream: `t-${id}-dead` }
  t.teardown(async () => {
    const nc = await connect({ servers: url }).catch(() => null)
    if (nc === null) return
    const jsm = await jetstreamManager(nc)
    for (const stream of [names.stream, names.deadLetterStream]) await jsm.streams.delete(stream).catch(() => {})
    await nc.close()
  })
  return names
}

/** A producer connection, closed at teardown: `send(subject, body, msgId?)` publishes to JetStream and waits for the ack. */
export async function natsProducer (t: Test, url = NATS_URL) {
  const nc: NatsConnection = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 200 })
  t.teardown(() => nc.close())
  const js = jetstream(nc)
  return {
    nc,
    js,
    async send (subject: string, body: unknown, msgId?: string) {
      const data = body instanceof Uint8Array ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))
      const h = headers()
      if (msgId !== undefined) h.set('Nats-Msg-Id', msgId)
      return await js.publish(subject, data, { headers: h })
    }
  }
}

export interface NatsServer { url: string, stop (): Promise<void>, start (): Promise<void> }

/** A private nats-server with JetStream on a free port, killed when the test ends. */
export async function natsServer (t: Test): Promise<NatsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'notify-nats-'))
  const port = await freePort()
  const url = `nats://127.0.0.1:${port}`
  let child: ChildProcess | null = null
  const server: NatsServer = {
    url,
    async start () {
      if (child !== null) return
      child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' })
      await until('nats-server to answer', async () => {
        const nc = await connect({ servers: url, timeout: 500 }).catch(() => null)
        if (nc === null) return false
        await nc.close()
        return true
      }, 10_000)
    },
    async stop () {
      if (child !== null) await kill(child)
      child = null
    }
  }
  t.teardown(async () => {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  process.once('exit', () => { child?.kill('SIGKILL') })
  await server.start()
  return server
}
