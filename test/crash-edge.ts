// The edge process of the exactly-once crash tests (test/crash-edge-process.mjs), restarted
// after each kill, and a producer and an observer that outlive it.
import { setTimeout as sleep } from 'node:timers/promises'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, type Client } from './helpers.js'
import { serverProcess, type ExampleProcess } from './example-process.js'
import { natsNames, NATS_URL, type NatsNames } from './nats.js'
import { AMQP_URL, amqpNames, type AmqpNames } from './rabbitmq.js'
import { until } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

/** What a producer that waits for answers (HTTP, gRPC) was told for one message. */
export interface Answer { id: string, replayed: boolean, attempts: number }

// As test/crash-edge-process.mjs declares them: `ticker` keeps no history.
export const CRASH_STREAMS = [...STREAMS, { name: 'ticker', kind: 'public' as const }]
const PROCESS = 'test/crash-edge-process.mjs'

/** The key that tells the edge processes a crash key has killed one of them already. */
export const crashedKey = (prefix: string, key: string): string => `${prefix}:crashed:${key}`

// Each crash key kills one process at most: more starts than keys plus one cannot be its doing.
const MAX_START_ATTEMPTS = 8

/** The edge processes, one at a time: `current` is the live one, or the one being started. */
export class Edges {
  current!: ExampleProcess
  readonly started: ExampleProcess[] = []
  constructor (readonly t: Test, readonly env: Record<string, string>) {}

  /**
   * Starts the next edge. One may take a crash key's message off a broker before it listens and
   * SIGKILL itself, as it would after (its crash key is then spent): another is started in its
   * place. Any other failure to start is the test's.
   */
  async start (): Promise<ExampleProcess> {
    for (let attempt = 1; ; attempt++) {
      let edge: ExampleProcess
      try {
        edge = await serverProcess(this.t, process.execPath, [PROCESS], { JWT_SECRET: SECRET, API_KEY, ...this.env })
      } catch (err) {
        if (attempt < MAX_START_ATTEMPTS && / exited \(null\) before listening/.test((err as Error).message)) continue
        throw err
      }
      this.started.push(edge)
      this.current = edge
      return edge
    }
  }

  grpcPort (edge: ExampleProcess): Promise<number> {
    return edge.logged('gRPC ingress listening', 10_000).then((line) => line.port as number)
  }
}

/** POSTs with the key until an answer comes, whatever the edge is doing meanwhile. */
export async function httpPublish (edges: Edges, key: string, body: unknown): Promise<Answer> {
  for (let attempts = 1; ; attempts++) {
    const res = await fetch(`${edges.current.http}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'idempotency-key': key },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(3000)
    }).catch(() => null)
    if (res?.status === 202) return { id: ((await res.json()) as { id: string }).id, replayed: res.headers.get('idempotent-replayed') === 'true', attempts }
    await res?.body?.cancel()
    await sleep(50)
  }
}

/** Waits until `client` holds `count` messages of `stream`, then takes them. */
export async function messagesOf (client: Client, stream: string, count: number, timeout = 30_000) {
  await until(`${count} ${stream} messages`, () => client.frames.filter((f) => f.event === 'message' && f.stream === stream).length >= count, timeout)
  await client.request({ event: 'ping' }, 'pong')
  return client.messages(stream)
}

/** Edge processes on `redisUrl` under `prefix`, with an AMQP queue and a JetStream stream of their own; `env` adds CRASH_KEYS, PENDING_TTL. */
export function crashEdges (t: Test, redisUrl: string, prefix: string, env: Record<string, string>): { edges: Edges, amqp: AmqpNames, nats: NatsNames } {
  const amqp = amqpNames(t)
  const nats = natsNames(t)
  const edges = new Edges(t, {
    REDIS_URL: redisUrl,
    TOPIC_PREFIX: prefix,
    AMQP_URL,
    AMQP_EXCHANGE: amqp.exchange,
    AMQP_QUEUE: amqp.queue,
    NATS_URL,
    NATS_STREAM: nats.stream,
    NATS_CONSUMER: nats.consumer,
    NATS_PREFIX: nats.subjectPrefix,
    ...env
  })
  return { edges, amqp, nats }
}
