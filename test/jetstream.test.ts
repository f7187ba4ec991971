import t from 'tap'
import { randomBytes } from 'node:crypto'
import { jetstreamManager } from '@nats-io/jetstream'
import { headers } from '@nats-io/transport-node'
import { natsSubject, parseSubject } from '../plugins/index.js'
import { build, connectUser, registrationError } from './helpers.js'
import { logCapture } from './log-capture.js'
import { natsNames, natsProducer, natsServer, NATS_URL } from './nats.js'
import { redisServer, sharedRedis, until } from './redis-server.js'
import { parentOf, traceSpans } from './tracing-sdk.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const data = { orderId: '1', status: 'placed' }

async function jetStreamEdge (t: Test, extra: Record<string, unknown> = {}, edgeOptions: Record<string, unknown> = {}) {
  const names = natsNames(t)
  const logs = logCapture()
  const edge = await build(t, {
    metrics: { defaultMetrics: false },
    jetstream: { servers: NATS_URL, stream: names.stream, consumer: names.consumer, subjectPrefix: names.subjectPrefix, deadLetterStream: names.deadLetterStream, ...extra },
    ...edgeOptions
  }, { logger: { level: 'warn', stream: logs.stream } })
  await until('the consumer to consume', () => edge.app.notifyJetStream.health().state === 'consuming', 10_000)
  return { ...edge, names, logs, producer: await natsProducer(t) }
}

t.test('subjects encode users as one token, wildcards included, and parse back', async (t) => {
  t.equal(natsSubject({ stream: 'order', user: 'a.b*>%' }), 'notify.private.a%2Eb%2A%3E%25.order')
  t.equal(natsSubject({ stream: 'promotional' }, 'x'), 'x.public.promotional')
  t.same(parseSubject('notify.private.a%2Eb%2A%3E%25.order'), { stream: 'order', user: 'a.b*>%' })
  t.same(parseSubject('x.public.promotional', 'x'), { stream: 'promotional' })
  t.equal(natsSubject({ stream: 'room', key: 'a.b@c=d*>' }), 'notify.channel.room.a%2Eb%40c%3Dd%2A%3E')
  t.same(parseSubject('notify.channel.room.a%2Eb%40c%3Dd%2A%3E'), { stream: 'room', key: 'a.b@c=d*>' })
  for (const bad of ['notify.public', 'notify.public.a.b', 'notify.private.a', 'notify.private.%E0%A4%A.order', 'other.public.a', 'notify.channel.room', 'notify.channel.room.a.b', 'notify.channel.room.%E0%A4%A', 'notify.toString.a']) {
    t.equal(parseSubject(bad), null, bad)
  }
})

t.test('public and private subjects reach the right sockets through app.notify, acked after the publish', async (t) => {
  const edge = await jetStreamEdge(t)
  const p = edge.names.subjectPrefix
  const [alice, dotted, bob] = await Promise.all(['alice', 'a.b*>', 'bob'].map((user) => connectUser(t, edge, user)))
  for (const c of [alice, dotted, bob]) await c.subscribe('order', 'promotional')
  await edge.producer.send(natsSubject({ stream: 'order', user: 'alice' }, p), data, 'm1')
  await edge.producer.send(natsSubject({ stream: 'order', user: 'a.b*>' }, p), { ...data, orderId: '2' })
  await edge.producer.send(natsSubject({ stream: 'promotional' }, p), { text: 'hi' })
  t.match(await alice.event('message'), { stream: 'order', data, id: /^\d+-\d+$/ })
  t.same((await dotted.event('message')).data, { ...data, orderId: '2' })
  for (const c of [alice, dotted, bob]) t.same((await c.event('message')).data, { text: 'hi' })
  await bob.request({ event: 'ping' }, 'pong')
  t.same(bob.messages(), [], 'bob got no private message')
  await until('acks', () => edge.app.notifyJetStream.stats.acked === 3)
  const jsm = await jetstreamManager(edge.producer.nc)
  await until('the work queue to empty', async () => (await jsm.streams.info(edge.names.stream)).state.messages === 0)
})

t.test('a channel subject reaches that key only; a hostile key reaches none and is dead with its reason', async (t) => {
  const edge = await jetStreamEdge(t)
  const p = edge.names.subjectPrefix
  const [lobby, dotted, plain] = await Promise.all(['lobby', 'a.b', 'a'].map(async (key) => {
    const client = await connectUser(t, edge, `u${randomBytes(4).toString('hex')}`)
    await client.subscribe(`room:${key}`)
    return client
  }))
  await edge.producer.send(natsSubject({ stream: 'room', key: 'lobby' }, p), { text: 'hello' }, 'c1')
  t.match(await lobby.event('message'), { stream: 'room:lobby', data: { text: 'hello' } })
  // An encoded dot is part of the key: room:a.b, never room:a.
  await edge.producer.send(`${p}.channel.room.a%2Eb`, { text: 'dotted' })
  t.match(await dotted.event('message'), { stream: 'room:a.b', data: { text: 'dotted' } })
  const hostile: Array<[string, string]> = [
    [`${p}.channel.room.*`, 'invalid'], [`${p}.channel.room.>`, 'invalid'], [`${p}.channel.room.%2A`, 'invalid'],
    [`${p}.channel.room.a%2Fb`, 'invalid'], [`${p}.channel.room.${'a'.repeat(129)}`, 'invalid'], [`${p}.channel.order.alice`, 'invalid'],
    [`${p}.channel.promotional.a`, 'invalid'], [`${p}.channel.nope.a`, 'unknown_stream'], [`${p}.channel.room.a.b`, 'subject'],
    [`${p}.channel.room`, 'subject'], [`${p}.channel.room.%E0%A4%A`, 'subject'], [`${p}.public.room`, 'invalid']
  ]
  for (const [subject] of hostile) await edge.producer.send(subject, { text: 'hostile' })
  await until('the rejections', () => edge.app.notifyJetStream.stats.rejected === hostile.length)
  for (const c of [lobby, dotted, plain]) {
    await c.request({ event: 'ping' }, 'pong')
    t.same(c.messages(), [], 'no hostile message reached a key')
  }
  const jsm = await jetstreamManager(edge.producer.nc)
  const dead = await jsm.streams.info(edge.names.deadLetterStream, { subjects_filter: '>' })
  const byReason: Record<string, number> = {}
  for (const [, reason] of hostile) byReason[reason] = (byReason[reason] ?? 0) + 1
  t.same(Object.fromEntries(Object.entries(dead.state.subjects ?? {}).map(([subject, n]) => [subject.slice(edge.names.deadLetterStream.length + 1), n])), byReason)
  t.equal(edge.app.notifyJetStream.stats.acked, 2)
})

t.test('a traceparent header is continued: the publish span is its child', async (t) => {
  const edge = await jetStreamEdge(t, {}, { tracing: true })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const traceId = randomBytes(16).toString('hex')
  const spanId = randomBytes(8).toString('hex')
  const h = headers()
  h.set('traceparent', `00-${traceId}-${spanId}-01`)
  await edge.producer.js.publish(natsSubject({ stream: 'order', user: 'alice' }, edge.names.subjectPrefix), JSON.stringify(data), { headers: h })
  await alice.event('message')
  await until('the spans', () => traceSpans(traceId).some((s) => s.name === 'notify deliver'), 5000)
  const publish = traceSpans(traceId).find((s) => s.name === 'notify publish')
  t.equal(publish && parentOf(publish), spanId, "the publish span continues the producer's span")
  t.equal(parentOf(traceSpans(traceId).find((s) => s.name === 'notify deliver')!), publish?.spanContext().spanId, 'and the delivery is its child')
})

t.test('a Nats-Msg-Id that has published already is acked without being shown twice', async (t) => {
  const edge = await jetStreamEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  // As if an earlier delivery of it had published, then died before its ack.
  await edge.app.notifyIdempotency.publish('order-7-placed', { stream: 'order', user: 'alice', data })
  await edge.producer.send(natsSubject({ stream: 'order', user: 'alice' }, edge.names.subjectPrefix), data, 'order-7-placed')
  await until('the replay', () => edge.app.notifyJetStream.stats.replayed === 1)
  await alice.event('message')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'shown once')
})

t.test('1,000 hostile messages end acked or dead-lettered with a reason, counted exactly', async (t) => {
  const edge = await jetStreamEdge(t, { maxBodyBytes: 1024 })
  const p = edge.names.subjectPrefix
  const kinds: Array<[string, string | Uint8Array, string | undefined, string]> = [
    [`${p}.private.alice`, JSON.stringify(data), undefined, 'subject'],
    [`${p}.whatever.order`, JSON.stringify(data), undefined, 'subject'],
    [`${p}.private.%E0%A4%A.order`, JSON.stringify(data), undefined, 'subject'],
    [`${p}.public.nope`, JSON.stringify(data), undefined, 'unknown_stream'],
    [`${p}.public.promotional`, '{"text":', undefined, 'not_json'],
    [`${p}.public.promotional`, Uint8Array.from([0xff, 0xfe, 0x22]), undefined, 'not_json'],
    [`${p}.private.alice.order`, JSON.stringify({ orderId: 1 }), undefined, 'schema'],
    [`${p}.public.promotional`, JSON.stringify({ text: 'x'.repeat(2000) }), undefined, 'too_large'],
    [`${p}.private.alice.promotional`, JSON.stringify(data), undefined, 'invalid'],
    [`${p}.private.${'x'.repeat(300)}.order`, JSON.stringify(data), undefined, 'invalid'],
    [`${p}.public.promotional`, JSON.stringify(data), '\u0001bad', 'message_id'],
    [`${p}.private.alice.order`, JSON.stringify(data), undefined, 'acked']
  ]
  const expected: Record<string, number> = {}
  for (let i = 0; i < 1000; i++) {
    const [subject, body, msgId, outcome] = kinds[i % kinds.length]
    expected[outcome] = (expected[outcome] ?? 0) + 1
    await edge.producer.send(subject, body, msgId === undefined ? undefined : `${msgId}-${i}`)
  }
  const { stats } = edge.app.notifyJetStream
  await until('every message', () => stats.acked + stats.rejected === 1000, 30_000)
  t.equal(stats.acked, expected.acked)
  t.equal(stats.rejected, 1000 - expected.acked)
  const jsm = await jetstreamManager(edge.producer.nc)
  const dead = await jsm.streams.info(edge.names.deadLetterStream, { subjects_filter: '>' })
  const bySubject = Object.fromEntries(Object.entries(dead.state.subjects ?? {}).map(([subject, n]) => [subject.slice(edge.names.deadLetterStream.length + 1), n]))
  const { acked, ...rejected } = expected
  t.same(bySubject, rejected, 'each dead one in the dead-letter stream under its reason')
  const metrics = await (await fetch(`${edge.http}/metrics`)).text()
  t.match(metrics, /notify_edge_jetstream_consuming 1/)
  t.match(metrics, /notify_edge_jetstream_rejected_total\{reason="subject"\} [1-9]/)
  t.equal(edge.logs.lines.filter((line) => line.msg.startsWith('notify edge: JetStream message rejected')).length, 1000 - acked, 'logged once each')
  t.equal(edge.app.notifyJetStream.health().state, 'consuming')
})

t.test('a backlog past prefetch: at most prefetch under way, each subject in order, every ack reaching the server before close', async (t) => {
  const edge = await jetStreamEdge(t, { prefetch: 8 })
  const p = edge.names.subjectPrefix
  // More subjects than prefetch: the bound is the prefetch's, not the subjects'.
  const users = Array.from({ length: 16 }, (_, i) => `user${i}`)
  const clients = await Promise.all(users.map((user) => connectUser(t, edge, user)))
  for (const c of clients) await c.subscribe('order')
  // Publishes that take a while, so that messages pile up under way: how many at once is the slot rule's to bound.
  const idempotency = edge.app.notifyIdempotency as { publish: typeof edge.app.notifyIdempotency.publish }
  const publish = idempotency.publish
  let underWay = 0
  let most = 0
  idempotency.publish = async (...args) => {
    most = Math.max(most, ++underWay)
    try {
      await new Promise((resolve) => setTimeout(resolve, 2))
      return await publish(...args)
    } finally {
      underWay--
    }
  }
  const count = 160
  // One at a time: the stream's order is the order sent.
  for (let i = 0; i < count; i++) await edge.producer.send(natsSubject({ stream: 'order', user: users[i % users.length] }, p), { orderId: String(i), status: 'placed' })
  await until('every ack', () => edge.app.notifyJetStream.stats.acked === count, 15_000)
  t.ok(most <= 8, `never more than prefetch under way (most: ${most})`)
  t.ok(most > 1, `the subjects went side by side (most: ${most})`)
  for (const [i, c] of clients.entries()) {
    // Counted where they wait (messages() takes them: a poll between two arrivals would lose the first).
    await until(`${users[i]}'s messages`, () => c.frames.filter((f) => f.event === 'message').length === count / users.length)
    const seen = c.messages().map((f) => Number(f.data.orderId))
    t.same(seen, [...seen].sort((x, y) => x - y), `${users[i]}'s messages in the order sent`)
  }
  // Acks of a turn go out together at its end: closing right after the count must still deliver them all.
  await edge.app.close()
  const jsm = await jetstreamManager(edge.producer.nc)
  t.equal((await jsm.streams.info(edge.names.stream)).state.messages, 0, 'the work queue is empty: every ack reached the server')
  t.equal((await jsm.consumers.info(edge.names.stream, edge.names.consumer)).num_ack_pending, 0, 'none left pending')
})

t.test('two instances share the durable consumer: each message is published once', async (t) => {
  const names = natsNames(t)
  const { url, prefix } = await sharedRedis(t)
  const jetstream = { servers: NATS_URL, stream: names.stream, consumer: names.consumer, subjectPrefix: names.subjectPrefix }
  const a = await build(t, { redis: url, topicPrefix: prefix, jetstream })
  const b = await build(t, { redis: url, topicPrefix: prefix, jetstream })
  await until('both consuming', () => [a, b].every((e) => e.app.notifyJetStream.health().state === 'consuming'), 10_000)
  const alice = await connectUser(t, a, 'alice')
  await alice.subscribe('promotional')
  const producer = await natsProducer(t)
  for (let i = 0; i < 200; i++) await producer.send(natsSubject({ stream: 'promotional' }, names.subjectPrefix), { i })
  await until('two hundred', () => a.app.notifyJetStream.stats.acked + b.app.notifyJetStream.stats.acked === 200, 15_000)
  await until('shown', () => alice.frames.length >= 200)
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages().map((f) => f.data.i).sort((x, y) => x - y), [...Array(200).keys()], 'each once')
})

t.test('a bus that cannot publish: the message is redelivered until it can, then shown once', async (t) => {
  const redis = await redisServer(t)
  const edge = await jetStreamEdge(t, { retryDelay: 200 }, { redis: redis.url })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('promotional')
  await redis.stop()
  await edge.producer.send(natsSubject({ stream: 'promotional' }, edge.names.subjectPrefix), { text: 'later' })
  await until('a redelivery', () => edge.app.notifyJetStream.stats.requeued >= 2, 15_000)
  await redis.start()
  await until('the publish', () => edge.app.notifyJetStream.stats.acked === 1, 15_000)
  t.same((await alice.event('message', 10_000)).data, { text: 'later' })
})

t.test('a NATS server restarted under the edge: it reconnects and resumes consuming', async (t) => {
  const server = await natsServer(t)
  const names = natsNames(t, server.url)
  const edge = await build(t, { jetstream: { servers: { servers: server.url, reconnectTimeWait: 100 }, stream: names.stream, consumer: names.consumer, subjectPrefix: names.subjectPrefix, retryDelay: 100 } })
  await until('consuming', () => edge.app.notifyJetStream.health().state === 'consuming', 10_000)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('promotional')
  const subject = natsSubject({ stream: 'promotional' }, names.subjectPrefix)
  const producer = await natsProducer(t, server.url)
  await producer.send(subject, { n: 1 })
  t.same((await alice.event('message')).data, { n: 1 })
  await server.stop()
  await until('the edge to notice', () => edge.app.notifyJetStream.health().state === 'reconnecting', 10_000)
  const alsoAlive = await fetch(`${edge.http}/health`).catch(() => null)
  t.ok(alsoAlive, 'the edge keeps serving')
  await server.start()
  await until('consuming again', () => edge.app.notifyJetStream.health().state === 'consuming', 15_000)
  await until('the producer back', async () => await producer.send(subject, { n: 2 }).then(() => true, () => false), 15_000)
  t.same((await alice.event('message', 15_000)).data, { n: 2 })
})

t.test('options are checked at registration; an unreachable server leaves the app serving', async (t) => {
  for (const jetstream of [{ servers: 7 }, { servers: [] }, { stream: 'a.b' }, { consumer: '' }, { setup: 'yes' }, { prefetch: 0 }, { deadLetterStream: '*' }]) {
    t.match(await registrationError({ jetstream }), { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(jetstream))
  }
  const edge = await build(t, { jetstream: { servers: { servers: 'nats://127.0.0.1:1', reconnectTimeWait: 50 }, retryDelay: 50 } })
  t.equal(edge.app.notifyJetStream.health().state, 'connecting')
  t.equal(edge.app.notifyJetStream.connection(), null)
  await edge.app.close()
  t.equal(edge.app.notifyJetStream.health().state, 'closed')
})
