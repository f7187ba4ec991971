// What history costs per publish: throughput and CPU of app.notify.publish() with history off
// and on, in memory and (with --redis) on Redis, and the memory each retained message takes.
//
//   node --expose-gc --import @tapjs/typescript/import bench/history.ts [--count 50000] [--redis redis://127.0.0.1:6390]
//
// Publishes are in-process (no HTTP), so the figures isolate the publish path itself. Use a Redis
// of its own: the Redis run reads INFO memory and deletes the keys it wrote.
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { notifyEdge, type StreamDefinition } from '../plugins/index.js'

function arg (name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at < 0 ? undefined : process.argv[at + 1]
}
const count = Number(arg('--count') ?? 50000)
const redisUrl = arg('--redis')
const prefix = `bench${process.pid}`
const users = 1000
// About 100 bytes, like the notifications of the main benchmark.
const data = { orderId: 'ord_0123456789', status: 'shipped', carrier: 'DHL', eta: '2025-01-01T12:00:00Z', n: 0 }

const STREAMS: StreamDefinition[] = [
  { name: 'off', kind: 'private' },
  { name: 'on', kind: 'private', history: { size: 100, ttl: 3600 } }
]

async function edge (redis: string | undefined): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(notifyEdge, {
    jwt: { secret: 'a-bench-secret-that-is-long-enough-for-hs256' },
    streams: STREAMS,
    tickets: false,
    routes: [],
    redis,
    topicPrefix: prefix
  })
  await app.ready()
  return app
}

/** Publishes `count` messages round-robin over `users` private topics, `concurrency` at a time. */
async function run (app: FastifyInstance, stream: string, concurrency: number): Promise<{ perSecond: number, cpuMicros: number }> {
  let next = 0
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const n = next++
      await app.notify.publish({ stream, user: `user-${n % users}`, data: { ...data, n } })
    }
  }))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  return { perSecond: Math.round(count / seconds), cpuMicros: (used.user + used.system) / count }
}

function heap (): number {
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

async function redisMemory (redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)![1])
}

async function deleteKeys (redis: Redis): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== '0')
}

const admin = redisUrl === undefined ? null : new Redis(redisUrl)
const rows: Array<Record<string, string | number>> = []
for (const redis of admin === null ? [undefined] : [undefined, redisUrl]) {
  for (const concurrency of [1, 100]) {
    for (const stream of ['off', 'on', 'off', 'on']) {
      const app = await edge(redis)
      if (admin !== null) await deleteKeys(admin)
      const before = heap()
      const redisBefore = admin === null ? 0 : await redisMemory(admin)
      const result = await run(app, stream, concurrency)
      const retained = stream === 'on' ? Math.min(count, users * 100) : 0
      const perMessage = (bytes: number): number | string => retained > 0 ? Math.round(bytes / retained) : '-'
      rows.push({
        bus: redis === undefined ? 'memory' : 'redis',
        history: stream === 'on' ? (redis === undefined ? 'memory' : 'redis') : 'off',
        concurrency,
        'publishes/s': result.perSecond,
        'CPU µs/publish': result.cpuMicros.toFixed(2),
        'heap B/msg': redis === undefined && globalThis.gc !== undefined ? perMessage(heap() - before) : '-',
        'Redis B/msg': redis !== undefined ? perMessage(await redisMemory(admin!) - redisBefore) : '-'
      })
      await app.close()
    }
  }
}
if (admin !== null) {
  await deleteKeys(admin)
  await admin.quit()
}
console.table(rows)
