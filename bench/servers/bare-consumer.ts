import { Connection } from 'rabbitmq-client'
import { argument, serve } from '../lib/ipc.js'
import { Consumed } from '../lib/consumed.js'

// The ingress scenario's yardstick: the same client library and prefetch as the edge's consumer,
// doing nothing but parse and ack. Its rate is what the broker and the library allow on this machine.

const url = argument('amqp')!
const exchange = argument('exchange')!
const queue = argument('queue')!
const prefetch = Number(argument('prefetch') ?? 100)

const connection = new Connection(url)
connection.on('error', () => {})
const consumed = new Consumed()

const consumer = connection.createConsumer({
  queue,
  queueOptions: { durable: true },
  exchanges: [{ exchange, type: 'topic', durable: true }],
  queueBindings: [{ queue, exchange, routingKey: '#' }],
  qos: { prefetchCount: prefetch },
  concurrency: prefetch
}, async (msg) => {
  consumed.seen((msg.body as { t: number }).t)
})
await new Promise<void>((resolve) => consumer.once('ready', resolve))

serve(consumed.commands(async () => {
  await consumer.close()
  await connection.close()
}), {})
