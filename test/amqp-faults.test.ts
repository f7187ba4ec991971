// The RabbitMQ ingress through the faults that break it: the broker going away (a private
// rabbitmq-server, killed and restarted) and the bus going away (a private Redis).
import t from 'tap'
import { build, connectUser } from './helpers.js'
import { amqpNames, producer, queueDepth, rabbitServer } from './rabbitmq.js'
import { redisServer, until } from './redis-server.js'

const data = { orderId: '1', status: 'placed' }
const WAIT = 30_000

t.test('broker down: sockets and HTTP keep working, health says so, and consuming resumes when it is back', async (t) => {
  const broker = await rabbitServer(t)
  const names = amqpNames(t, broker.url)
  const edge = await build(t, {
    metrics: { defaultMetrics: false },
    amqp: { url: { url: broker.url, retryLow: 20, retryHigh: 200 }, exchange: names.exchange, queue: names.queue }
  })
  const state = (): string => edge.app.notifyAmqp.health().state
  await until('consuming', () => state() === 'consuming', WAIT)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const p = producer(t, names.exchange, broker.url)
  await p.send('private.alice.order', data, { messageId: 'before' })
  await alice.event('message')

  await broker.stop()
  await until('the edge to notice', () => state() === 'reconnecting', WAIT)
  t.match(await (await fetch(`${edge.http}/metrics`)).text(), /notify_edge_amqp_consuming 0/)
  await edge.app.notify.publish({ stream: 'order', user: 'alice', data: { ...data, status: 'paid' } })
  t.equal((await alice.event('message')).data.status, 'paid', 'in-process publishing and sockets are unaffected')

  await broker.start()
  await until('consuming again', () => state() === 'consuming', WAIT)
  await p.send('private.alice.order', { ...data, status: 'shipped' }, { messageId: 'after' })
  t.equal((await alice.event('message', WAIT)).data.status, 'shipped', 'the consumer re-declared and resumed')

  await broker.stop()
  await until('the edge to notice', () => state() === 'reconnecting', WAIT)
  await edge.app.close()
  t.equal(state(), 'closed', 'closing with the broker away does not hang')
})

t.test('a message is acknowledged only once its publish succeeded: bus frozen means requeued, never lost', async (t) => {
  const names = amqpNames(t)
  const redis = await redisServer(t)
  const edge = await build(t, {
    redis: redis.url,
    bus: { publishTimeout: 200 },
    amqp: { exchange: names.exchange, queue: names.queue, retryDelay: 50 }
  })
  await until('consuming', () => edge.app.notifyAmqp.health().state === 'consuming', WAIT)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const p = producer(t, names.exchange)
  await p.send('private.alice.order', data, { messageId: 'one' })
  const first = await alice.event('message')
  await until('its ack', () => edge.app.notifyAmqp.stats.acked === 1)

  // Frozen, not killed: Redis keeps the history a restart would lose.
  redis.pause()
  await p.send('private.alice.order', { ...data, status: 'paid' }, { messageId: 'two' })
  await until('a requeue', () => edge.app.notifyAmqp.stats.requeued >= 2)
  t.equal(edge.app.notifyAmqp.stats.acked, 1, 'not acknowledged while it cannot be published')

  redis.resume()
  await until('the ack', () => edge.app.notifyAmqp.stats.acked === 2, WAIT)
  t.equal(await queueDepth(p.connection, names.queue), 0)
  const late = await connectUser(t, edge, 'alice')
  const resumed = await late.subscribe({ stream: 'order', since: first.id })
  t.same(resumed.gaps, [])
  const missed = await late.event('message')
  t.equal(missed.data.status, 'paid', 'published once the bus was back, into history')
  await late.request({ event: 'ping' }, 'pong')
  t.same(late.messages(), [], 'exactly once')
})
