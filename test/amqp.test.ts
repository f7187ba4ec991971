import t from 'tap'
import Fastify from 'fastify'
import { notify, notifyAmqp, notifyBus, notifyHistory, routingKey } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, connectUser, registrationError } from './helpers.js'
import { AMQP_URL, amqpNames, drainQueue, producer, queueDepth } from './rabbitmq.js'
import { logCapture } from './log-capture.js'
import { until } from './redis-server.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const data = { orderId: '1', status: 'placed' }

async function amqpEdge (t: Test, extra: Record<string, unknown> = {}) {
  const names = amqpNames(t)
  const logs = logCapture()
  const edge = await build(t, {
    metrics: { defaultMetrics: false },
    amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue, deadLetterExchange: names.deadLetterExchange, deadLetterQueue: names.deadLetterQueue, ...extra }
  }, { logger: { level: 'warn', stream: logs.stream } })
  await until('the consumer to consume', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  return { ...edge, names, logs, producer: producer(t, names.exchange) }
}

t.test('routing keys public.<stream> and private.<user>.<stream> reach the right sockets through app.notify', async (t) => {
  const edge = await amqpEdge(t)
  const [alice, dotted, bob] = await Promise.all(['alice', 'a.b#*%', 'bob'].map((user) => connectUser(t, edge, user)))
  for (const c of [alice, dotted, bob]) await c.subscribe('order', 'promotional')
  t.equal(routingKey({ stream: 'order', user: 'a.b#*%' }), 'private.a%2Eb%23*%25.order')

  await edge.producer.send('private.alice.order', data, { messageId: 'm1' })
  await edge.producer.send(routingKey({ stream: 'order', user: 'a.b#*%' }), Buffer.from(JSON.stringify({ ...data, orderId: '2' })))
  await edge.producer.send('public.promotional', JSON.stringify({ text: 'hi' }), { contentType: 'text/plain' })

  const got = await alice.event('message')
  t.match(got, { stream: 'order', data, id: /^\d+-\d+$/ })
  t.same((await dotted.event('message')).data, { ...data, orderId: '2' }, 'a raw body without content type is parsed too')
  for (const c of [alice, dotted, bob]) t.same((await c.event('message')).data, { text: 'hi' })
  await bob.request({ event: 'ping' }, 'pong')
  t.same(bob.messages(), [], 'bob got no private message')
  await until('acks', () => edge.app.notifyAmqp.stats.acked === 3)
  t.equal(await queueDepth(edge.producer.connection, edge.names.queue), 0)
})

t.test('a redelivered messageId is acknowledged without being shown twice', async (t) => {
  const edge = await amqpEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  for (let i = 0; i < 3; i++) await edge.producer.send('private.alice.order', data, { messageId: 'order-7-placed' })
  await until('the three deliveries', () => edge.app.notifyAmqp.stats.acked + edge.app.notifyAmqp.stats.replayed === 3)
  t.same(edge.app.notifyAmqp.stats, { acked: 1, replayed: 2, rejected: 0, requeued: 0 })
  await alice.event('message')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'shown once')
})

t.test('messages that can never succeed are dead-lettered, counted by reason, and logged', async (t) => {
  const edge = await amqpEdge(t, { maxBodyBytes: 1024 })
  const bad: Array<[string, unknown, string]> = [
    ['private.alice', data, 'routing_key'],
    ['private.a.b.order', data, 'routing_key'],
    ['private.%E0%A4%A.order', data, 'routing_key'],
    ['whatever.order', data, 'routing_key'],
    ['public.nope', data, 'unknown_stream'],
    ['public.promotional', Buffer.from('{"text":'), 'not_json'],
    ['public.promotional', Buffer.from([0xff, 0xfe, 0x22]), 'not_json'],
    ['public.promotional', Buffer.alloc(0), 'not_json'],
    ['private.alice.order', { orderId: '1' }, 'schema'],
    ['public.promotional', { text: 'x'.repeat(2000) }, 'too_large'],
    ['private.alice.promotional', data, 'invalid'],
    ['public.order', data, 'invalid']
  ]
  for (const [key, body] of bad) await edge.producer.send(key, body)
  await edge.producer.send('public.promotional', data, { messageId: '' })
  await until('every rejection', () => edge.app.notifyAmqp.stats.rejected === bad.length + 1)
  await until('the dead letters', async () => await queueDepth(edge.producer.connection, edge.names.deadLetterQueue) === bad.length + 1)
  const dead = await drainQueue(edge.producer.connection, edge.names.deadLetterQueue)
  t.same(dead.map((d) => d.routingKey).sort(), [...bad.map(([key]) => key), 'public.promotional'].sort(), 'each one, with its routing key')
  const metrics = await (await fetch(`${edge.http}/metrics`)).text()
  for (const reason of ['routing_key', 'unknown_stream', 'not_json', 'schema', 'too_large', 'invalid', 'message_id']) {
    t.match(metrics, new RegExp(`notify_edge_amqp_rejected_total\\{reason="${reason}"\\} [1-9]`), reason)
  }
  t.match(metrics, /notify_edge_amqp_consuming 1/)
  const logged = edge.logs.lines.filter((line) => line.msg.startsWith('notify edge: AMQP message rejected'))
  t.equal(logged.length, bad.length + 1, 'logged once each')
  t.same(logged.map((line) => line.reason).sort(), [...bad.map(([, , reason]) => reason), 'message_id'].sort(), 'with the reason')
  t.equal(edge.app.notifyAmqp.stats.acked, 0)
})

t.test('without a dead-letter exchange rejected messages are dropped, not requeued', async (t) => {
  const names = amqpNames(t)
  const edge = await build(t, { amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue } })
  await until('consuming', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const p = producer(t, names.exchange)
  await p.send('public.nope', data)
  await until('the rejection', () => edge.app.notifyAmqp.stats.rejected === 1)
  t.equal(await queueDepth(p.connection, names.queue), 0)
})

t.test('app.close() stops consuming, lets in-flight messages finish or go back, and ends the connection', async (t) => {
  const edge = await amqpEdge(t, { prefetch: 10 })
  const total = 300
  for (let i = 0; i < total; i++) await edge.producer.send('public.promotional', { i }, { messageId: `close-${i}` })
  await until('some to be consumed', () => edge.app.notifyAmqp.stats.acked > 0)
  await edge.app.close()
  t.equal(edge.app.notifyAmqp.health().state, 'closed')
  t.notOk(edge.app.notifyAmqp.connection.ready, 'connection closed')
  const left = await queueDepth(edge.producer.connection, edge.names.queue)
  t.equal(edge.app.notifyAmqp.stats.acked + left, total, 'every message was either published and acked or is back in the queue')
})

t.test('the plugin registers alone, with the idempotency it needs', async (t) => {
  const names = amqpNames(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(notifyBus)
  await app.register(notifyHistory)
  await app.register(notify, { streams: STREAMS })
  await app.register(notifyAmqp, { url: { url: AMQP_URL, retryLow: 10 }, exchange: names.exchange, queue: names.queue })
  await app.ready()
  t.ok(app.hasDecorator('notifyIdempotency'), 'registers idempotency when the app had none')
  await until('consuming', () => app.notifyAmqp.health().state === 'consuming', 10_000)
  t.same(app.notifyAmqp.health(), { state: 'consuming', queue: names.queue })
})

t.test('a broker that cannot be reached leaves the app serving, reconnecting', async (t) => {
  const edge = await build(t, { amqp: { url: { url: 'amqp://guest:guest@127.0.0.1:1', retryLow: 10, retryHigh: 50 } } })
  t.equal(edge.app.notifyAmqp.health().state, 'connecting')
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await edge.app.notify.publish({ stream: 'order', user: 'alice', data })
  await alice.event('message')
  t.equal(edge.app.notifyAmqp.health().state, 'connecting')
  await edge.app.close()
  t.equal(edge.app.notifyAmqp.health().state, 'closed', 'closing does not wait for a broker that never came')
})

t.test('singleActiveConsumer: of two instances on one queue, one consumes and the other stands by', async (t) => {
  const names = amqpNames(t)
  const amqp = { url: AMQP_URL, exchange: names.exchange, queue: names.queue, singleActiveConsumer: true }
  const a = await build(t, { amqp })
  await until('consuming', () => a.app.notifyAmqp.health().state === 'consuming', 10_000)
  const b = await build(t, { amqp })
  await until('consuming', () => b.app.notifyAmqp.health().state === 'consuming', 10_000)
  const p = producer(t, names.exchange)
  for (let i = 0; i < 50; i++) await p.send('public.promotional', { i })
  await until('all acked', () => a.app.notifyAmqp.stats.acked + b.app.notifyAmqp.stats.acked === 50)
  t.same([a.app.notifyAmqp.stats.acked, b.app.notifyAmqp.stats.acked], [50, 0])
})

t.test('amqp options are validated at registration', async (t) => {
  const bad = [
    { url: 42 }, { exchange: '' }, { exchange: 'has space' }, { queue: 'q'.repeat(256) }, { deadLetterQueue: 'dlq' },
    { singleActiveConsumer: 'yes' }, { prefetch: 0 }, { maxBodyBytes: -1 }, { retryDelay: 1.5 }, { closeTimeout: '1' }
  ]
  for (const amqp of bad) {
    t.equal((await registrationError({ amqp }))?.code, 'FST_NOTIFY_INVALID_OPTION', JSON.stringify(amqp))
  }
})
