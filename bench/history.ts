// What history costs per publish: throughput and CPU of app.notify.publish() with history off
// and on (memory ring), and the memory each retained message takes.
//
//   node --expose-gc --import @tapjs/typescript/import bench/history.ts [--count 50000]
//
// Publishes are in-process (no HTTP), so the figures isolate the publish path itself.
import Fastify, { type FastifyInstance } from 'fastify'
import { notifyEdge, type StreamDefinition } from '../plugins/index.js'

const count = Number(process.argv[process.argv.indexOf('--count') + 1] || 50000)
const users = 1000
// About 100 bytes, like the notifications of the main benchmark.
const data = { orderId: 'ord_0123456789', status: 'shipped', carrier: 'DHL', eta: '2025-01-01T12:00:00Z', n: 0 }

const STREAMS: StreamDefinition[] = [
  { name: 'off', kind: 'private' },
  { name: 'on', kind: 'private', history: { size: 100, ttl: 3600 } }
]

async function edge (): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  await app.register(notifyEdge, { jwt: { secret: 'a-bench-secret-that-is-long-enough-for-hs256' }, streams: STREAMS, tickets: false, routes: [] })
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

const rows: Array<Record<string, string | number>> = []
for (const concurrency of [1, 100]) {
  for (const stream of ['off', 'on', 'off', 'on']) {
    const app = await edge()
    const before = heap()
    const result = await run(app, stream, concurrency)
    const retained = stream === 'on' ? Math.min(count, users * 100) : 0
    rows.push({
      history: stream === 'on' ? 'memory' : 'off',
      concurrency,
      'publishes/s': result.perSecond,
      'CPU µs/publish': result.cpuMicros.toFixed(2),
      'heap B/retained msg': retained > 0 && globalThis.gc !== undefined ? Math.round((heap() - before) / retained) : '-'
    })
    await app.close()
  }
}
console.table(rows)
