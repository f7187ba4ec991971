import { Connection } from 'rabbitmq-client'
import { argument, serve } from '../lib/ipc.js'
import { nowUs } from '../lib/shared.js'

// The ingress scenario's yardstick: the same client library and prefetch as the edge's consumer,
// doing nothing but parse and ack. Its rate is what the broker and the library allow on this machine.

const url = argument('amqp')!
const exchange = argument('exchange')!
const queue = argument('queue')!
const prefetch = Number(argument('prefetch') ?? 100)

const connection = new Connection(url)
connection.on('error', () => {})
let consumed = 0
let firstT = Infinity
let lastAt = 0
let cpuStart = process.cpuUsage()
let waiting: { expected: number, resolve: () => void } | null = null

const consumer = connection.createConsumer({
  queue,
  queueOptions: { durable: true },
  exchanges: [{ exchange, type: 'topic', durable: true }],
  queueBindings: [{ queue, exchange, routingKey: '#' }],
  qos: { prefetchCount: prefetch },
  concurrency: prefetch
}, async (msg) => {
  const t = (msg.body as { t: number }).t
  if (t < firstT) firstT = t
  lastAt = nowUs()
  if (++consumed >= (waiting?.expected ?? Infinity)) waiting?.resolve()
})
await new Promise<void>((resolve) => consumer.once('ready', resolve))

serve({
  arm: () => {
    consumed = 0
    firstT = Infinity
    cpuStart = process.cpuUsage()
  },
  wait: async ({ expected }: { expected: number }) => {
    if (consumed < expected) await new Promise<void>((resolve) => { waiting = { expected, resolve } })
    waiting = null
    const { user, system } = process.cpuUsage(cpuStart)
    return { consumed, spanMs: (lastAt - firstT) / 1000, cpuUs: user + system }
  },
  close: async () => {
    await consumer.close()
    await connection.close()
    setImmediate(() => process.exit(0))
  }
}, {})
