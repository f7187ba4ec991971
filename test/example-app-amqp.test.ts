// The seed architecture end to end: two example-app processes on Redis and RabbitMQ, producers
// publishing to the topic exchange, sockets on both instances.
import { once } from 'node:events'
import t from 'tap'
import { exampleProcess, login } from './example-process.js'
import { API_KEY, SECRET, connect, ticket, type Client } from './helpers.js'
import { amqpNames, producer } from './rabbitmq.js'
import { redisServer, until } from './redis-server.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function user (t: Test, instance: { http: string, ws: string }, name: string, ...streams: string[]): Promise<Client> {
  const { client } = await connect(t, `${instance.ws}/ws?ticket=${await ticket(instance.http, await login(instance.http, name))}`)
  await client.subscribe(...streams)
  return client
}

async function quiet (t: Test, clients: Client[], what: string): Promise<void> {
  for (const c of clients) await c.request({ event: 'ping' }, 'pong')
  t.same(clients.map((c) => c.messages().length), clients.map(() => 0), what)
}

t.test('seed scenario: U1 (two sockets on A, one on B) and U2 (on B) over RabbitMQ and Redis', async (t) => {
  const redis = await redisServer(t)
  const names = amqpNames(t)
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, AMQP_URL: process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672', AMQP_EXCHANGE: names.exchange, AMQP_QUEUE: names.queue, ORDER_STEP_MS: '10' }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])
  for (const instance of [a, b]) {
    await until('consuming', async () => (await (await fetch(`${instance.http}/health`)).json()).amqp?.state === 'consuming', 20_000)
  }
  const u1 = [await user(t, a, 'U1', 'order', 'promotional'), await user(t, a, 'U1', 'order', 'promotional'), await user(t, b, 'U1', 'order', 'promotional')]
  const u2 = await user(t, b, 'U2', 'order', 'promotional')
  const orders = producer(t, names.exchange)

  await orders.send('public.promotional', { text: '10% off' }, { messageId: 'promo-1' })
  for (const c of [...u1, u2]) t.same((await c.event('message')).data, { text: '10% off' })
  await orders.send('private.U2.order', { orderId: 'o1', status: 'placed' }, { messageId: 'o1:placed' })
  t.same((await u2.event('message')).data, { orderId: 'o1', status: 'placed' })
  await quiet(t, [...u1, u2], 'each message once on each connection, U2\'s order only on U2\'s')

  // The order service of A publishes through the exchange; whichever instance consumes it, U2 on B gets it.
  const res = await fetch(`${a.http}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'U2' }) })
  const { orderId } = await res.json() as { orderId: string }
  // Two instances compete for one queue: updates a few ms apart may be shown in either order.
  const updates = [await u2.event('message'), await u2.event('message'), await u2.event('message')]
  t.same(updates.map((m) => m.data).sort((x, y) => x.status.localeCompare(y.status)), ['paid', 'placed', 'shipped'].map((status) => ({ orderId, status })))
  await quiet(t, [...u1, u2], 'U1 sees none of U2\'s orders')
  const health = await (await fetch(`${b.http}/health`)).json()
  t.match(health, { status: 'ok', amqp: { state: 'consuming', queue: names.queue } })
})

t.test('SIGKILL of a consuming instance mid-stream: its unacked messages are redelivered to the other, none is lost', async (t) => {
  const redis = await redisServer(t)
  const names = amqpNames(t)
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, AMQP_URL: process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672', AMQP_EXCHANGE: names.exchange, AMQP_QUEUE: names.queue }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])
  const consumed = async (instance: { http: string }): Promise<number> => {
    const text = await (await fetch(`${instance.http}/metrics`)).text()
    return Number(/amqp_messages_total\{outcome="acked"\} (\d+)/.exec(text)?.[1] ?? 0)
  }
  for (const instance of [a, b]) {
    await until('consuming', async () => (await (await fetch(`${instance.http}/health`)).json()).amqp?.state === 'consuming', 20_000)
  }
  const watcher = await user(t, b, 'U', 'reward')
  const orders = producer(t, names.exchange)
  const total = 600
  let killed = false
  for (let i = 0; i < total; i++) {
    await orders.send('private.U.reward', { seq: i }, { messageId: `reward-${i}` })
    if (!killed && i >= 200 && await consumed(a) > 0) {
      const exited = once(a.child, 'exit')
      a.child.kill('SIGKILL')
      await exited
      killed = true
    }
  }
  t.ok(killed, 'A was killed while messages were flowing')
  const seen = new Map<number, number>()
  while (seen.size < total) {
    const { data } = await watcher.event('message', 15_000)
    seen.set(data.seq, (seen.get(data.seq) ?? 0) + 1)
  }
  await watcher.request({ event: 'ping' }, 'pong')
  for (const extra of watcher.messages()) seen.set(extra.data.seq, (seen.get(extra.data.seq) ?? 0) + 1)
  t.equal(seen.size, total, 'every message shown')
  // A redelivery whose first publish had been recorded is replayed, not shown (test/amqp.test.ts);
  // one killed after its bus publish and before its record is shown again: at most the in-flight ones.
  const twice = [...seen.values()].filter((count) => count > 1).length
  t.comment(`shown twice: ${twice}`)
  t.ok(twice <= 100, 'duplicates only from the messages in flight at the kill (prefetch 100)')
})
