import t from 'tap'
import Fastify from 'fastify'
import { compareMessageIds, isMessageId, notifyEdge } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { orderRoutes } from '../example-app/orders.js'
import { API_KEY, SECRET, build, connectUser, urls, type Client, type Edge, type Frame } from './helpers.js'
import { AMQP_URL, amqpNames } from './rabbitmq.js'
import { sharedRedis, until } from './redis-server.js'
import { cleanUpKeys, placeOrder, publisherApp } from './split-helpers.js'

// One order service module (example-app/orders.ts), unchanged, run embedded in the edge and split
// out behind the publisher over each transport: the client sees the same frames (SPEC section 11).

const STEP_MS = 5

async function orderFrames (client: Client, http: string): Promise<Frame[]> {
  await client.subscribe('order')
  const orderId = await placeOrder(http, 'alice')
  const frames: Frame[] = []
  for (const status of ['placed', 'paid', 'shipped']) {
    frames.push(await client.next((f) => f.event === 'message' && f.data.status === status && f.data.orderId === orderId))
  }
  return frames
}

/** What stays the same whoever publishes: everything but the id, the time and the order's uuid. */
function shape (frames: Frame[]): unknown[] {
  return frames.map(({ id, ts, data, ...rest }) => ({ ...rest, data: { ...data, orderId: typeof data.orderId }, id: typeof id, ts: typeof ts }))
}

function increasing (t: { ok: (value: unknown, message: string) => void }, frames: Frame[]): void {
  for (let i = 1; i < frames.length; i++) {
    const [ms, seq] = frames[i].id.split('-').map(BigInt)
    const [pms, pseq] = frames[i - 1].id.split('-').map(BigInt)
    t.ok(ms > pms || (ms === pms && seq > pseq), `${frames[i].id} after ${frames[i - 1].id}`)
  }
}

t.test('the same order service, embedded and split out, sends the same client the same frames', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)

  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, redis: url, topicPrefix: `${prefix}e` })
  await app.register(orderRoutes, { stepMs: STEP_MS })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const embedded: Edge = { app, ...urls(app) }
  const embeddedFrames = await orderFrames(await connectUser(t, embedded, 'alice'), embedded.http)

  const names = amqpNames(t)
  const edge: Edge = await build(t, {
    redis: url, topicPrefix: prefix, grpc: { apiKey: API_KEY, port: 0 }, amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue }
  })
  await until('the edge to consume', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const overRedis = await publisherApp(t, { redis: url, topicPrefix: prefix }, STEP_MS)
  t.notOk(overRedis.app.hasDecorator('notifyBus'), 'the publisher runs no bus and no sockets')
  const overHttp = await publisherApp(t, { http: { url: edge.http, apiKey: API_KEY } }, STEP_MS)
  const overGrpc = await publisherApp(t, { grpc: { address: `127.0.0.1:${edge.app.notifyGrpc.port}`, apiKey: API_KEY } }, STEP_MS)
  const overAmqp = await publisherApp(t, { amqp: { url: AMQP_URL, exchange: names.exchange } }, STEP_MS)
  const client = await connectUser(t, edge, 'alice')
  const redisFrames = await orderFrames(client, overRedis.http)
  const httpFrames = await orderFrames(client, overHttp.http)
  const grpcFrames = await orderFrames(client, overGrpc.http)
  const amqpFrames = await orderFrames(client, overAmqp.http)

  for (const frames of [redisFrames, httpFrames, grpcFrames, amqpFrames]) t.same(shape(frames), shape(embeddedFrames))
  increasing(t, [...redisFrames, ...httpFrames, ...grpcFrames])
  // Over AMQP the edge that consumes assigns the ids: real message ids, after the others'. The
  // edge's competing consumers may publish an order's steps out of order, so they are not compared.
  for (const frame of amqpFrames) t.ok(isMessageId(frame.id) && compareMessageIds(frame.id, grpcFrames[2].id) > 0, `${frame.id} is a later message id`)

  // Same history as an in-edge publish: a client resuming from the first message gets the rest.
  const resumed = await connectUser(t, edge, 'alice')
  const subscribed = await resumed.subscribe({ stream: 'order', since: redisFrames[0].id })
  t.same(subscribed.gaps, [])
  const replayed = [...redisFrames.slice(1), ...httpFrames, ...grpcFrames]
  for (const frame of replayed) t.same(await resumed.event('message'), frame)
  const rest = [await resumed.event('message'), await resumed.event('message'), await resumed.event('message')]
  t.same(rest.sort((a, b) => compareMessageIds(a.id, b.id)), [...amqpFrames].sort((a, b) => compareMessageIds(a.id, b.id)))
})

t.test('over AMQP the publish resolves once the broker confirmed it, with the messageIds the edge dedupes on', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const names = amqpNames(t)
  const edge = await build(t, { redis: url, topicPrefix: prefix, amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue } })
  await until('the edge to consume', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const { app } = await publisherApp(t, { amqp: { url: AMQP_URL, exchange: names.exchange } })
  const carol = await connectUser(t, edge, 'carol')
  await carol.subscribe('reward', 'promotional')

  const one = await app.notify.publish({ stream: 'reward', user: 'carol', data: 'hi' })
  t.same(Object.keys(one), ['id'], 'no online: nothing answers back')
  t.notOk(isMessageId((one as { id: string }).id), 'the id is the AMQP messageId, not a message id')
  t.match(await carol.event('message'), { stream: 'reward', data: 'hi' }, 'a JSON string body arrives as a string')
  const many = await app.notify.publish({ stream: 'reward', users: ['carol', 'dave'], data: 2 }) as { ids: string[] }
  t.same(Object.keys(many), ['ids'], 'no offline either')
  t.equal(new Set(many.ids).size, 2, 'one messageId per recipient')
  t.match(await carol.event('message'), { stream: 'reward', data: 2 })
  await app.notify.publish({ stream: 'promotional', data: { text: 'sale' } })
  t.match(await carol.event('message'), { stream: 'promotional', data: { text: 'sale' } })
  await until('every message to be consumed', () => edge.app.notifyAmqp.stats.acked === 4)
  t.same(edge.app.notifyAmqp.stats, { acked: 4, replayed: 0, rejected: 0, requeued: 0 })
})

t.test('a private message from the publisher reaches only its user, on every edge', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const edges = [await build(t, { redis: url, topicPrefix: prefix }), await build(t, { redis: url, topicPrefix: prefix })]
  const { app } = await publisherApp(t, { redis: url, topicPrefix: prefix })
  const alice = [await connectUser(t, edges[0], 'alice'), await connectUser(t, edges[1], 'alice')]
  const bob = await connectUser(t, edges[1], 'bob')
  for (const client of [...alice, bob]) await client.subscribe('reward', 'promotional')

  const { ids } = await app.notify.publish({ stream: 'reward', users: ['alice', 'bob'], data: { points: 5 } }) as { ids: string[] }
  const { id: promo } = await app.notify.publish({ stream: 'promotional', data: { text: 'sale' } }) as { id: string }
  for (const client of alice) {
    t.match(await client.event('message'), { stream: 'reward', id: ids[0], data: { points: 5 } })
    t.match(await client.event('message'), { stream: 'promotional', id: promo })
  }
  t.match(await bob.event('message'), { stream: 'reward', id: ids[1] })
  t.match(await bob.event('message'), { stream: 'promotional', id: promo })
  t.same(alice[0].messages(), [])
})

t.test('a stream without history goes out in the same wire format', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const streams = [{ name: 'ticker', kind: 'public' as const }, { name: 'note', kind: 'private' as const }]
  const edge = await build(t, { redis: url, topicPrefix: prefix, streams })
  const { app } = await publisherApp(t, { redis: url, topicPrefix: prefix, streams })
  const client = await connectUser(t, edge, 'carol')
  await client.subscribe('ticker', 'note')
  const { id } = await app.notify.publish({ stream: 'ticker', data: { price: 1 } }) as { id: string }
  const frame = await client.event('message')
  t.same(frame, { event: 'message', stream: 'ticker', id, ts: frame.ts, data: { price: 1 } })
  t.equal(String(frame.ts), id.split('-')[0])
  await app.notify.publish({ stream: 'note', user: 'carol', data: 'hi' })
  t.match(await client.event('message'), { stream: 'note', data: 'hi' })
})

t.test('the publisher answers who was offline as the edge does, over Redis, HTTP and gRPC, and tells onOffline', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const edge = await build(t, { redis: url, topicPrefix: prefix, grpc: { apiKey: API_KEY, port: 0 } })
  const told: Array<{ users: string[], ids: string[] }> = []
  const overRedis = await publisherApp(t, { redis: url, topicPrefix: prefix, onOffline: (users, message) => { told.push({ users, ids: message.ids }) } })
  const overHttp = await publisherApp(t, { http: { url: edge.http, apiKey: API_KEY } })
  const overGrpc = await publisherApp(t, { grpc: { address: `127.0.0.1:${edge.app.notifyGrpc.port}`, apiKey: API_KEY } })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('reward')
  for (const { app } of [overRedis, overHttp, overGrpc]) {
    t.match(await app.notify.publish({ stream: 'reward', user: 'alice', data: 1 }), { id: String, online: true })
    t.match(await app.notify.publish({ stream: 'reward', user: 'bob', data: 2 }), { id: String, online: false })
    const many = await app.notify.publish({ stream: 'reward', users: ['alice', 'bob', 'carol'], data: 3 }) as { ids: string[], offline: string[] }
    t.same(many.offline, ['bob', 'carol'])
    t.same(Object.keys(await app.notify.publish({ stream: 'promotional', data: 4 })), ['id'], 'a public stream answers its id only')
  }
  t.same(told.map((m) => m.users), [['bob'], ['bob', 'carol']])
})

t.test('presence from a publisher over Redis and HTTP is the edge\'s answer; over gRPC and AMQP it is 501', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const edges = [await build(t, { redis: url, topicPrefix: prefix }), await build(t, { redis: url, topicPrefix: prefix })]
  const alice = [await connectUser(t, edges[0], 'alice'), await connectUser(t, edges[1], 'alice')]
  await alice[0].subscribe('order', 'promotional')
  await (await connectUser(t, edges[1], 'bob')).subscribe('promotional')
  const asked = { users: ['alice', 'bob', 'carol'] }
  // Every change written, not only alice's: each edge writes its changes in batches, 5 ms apart.
  await until('both edges\' shares to be written', async () => {
    const { alice, bob } = (await edges[0].app.notify.presence(asked)).users
    return alice.connections === 2 && alice.streams.length === 2 && bob.connections === 1 && bob.streams.length === 1
  })
  // Enough users that the HTTP transport splits the query over several GETs.
  const crowd = { users: ['alice', ...Array.from({ length: 600 }, (_, i) => `someone-with-a-long-id-${i}`)] }
  const queries = [asked, { user: 'bob' }, crowd, { stream: 'promotional' }, { stream: 'system' }]
  const expected = await Promise.all(queries.map((query) => edges[0].app.notify.presence(query)))
  t.match(expected[0], { users: { alice: { connections: 2, streams: ['order', 'promotional'] }, bob: { connections: 1 }, carol: { connections: 0 } } })
  t.same(expected[3], { stream: 'promotional', connections: 2, users: 2 })

  const overRedis = await publisherApp(t, { redis: url, topicPrefix: prefix })
  const overHttp = await publisherApp(t, { http: { url: edges[1].http, apiKey: API_KEY } })
  for (const { app } of [overRedis, overHttp]) {
    t.same(await Promise.all(queries.map((query) => app.notify.presence(query))), expected)
    await t.rejects(app.notify.presence({ stream: 'order' }), { code: 'FST_NOTIFY_BAD_PRESENCE_QUERY', statusCode: 400 }, 'checked as the edge checks')
    await t.rejects(app.notify.presence({ user: '' }), { code: 'FST_NOTIFY_BAD_PRESENCE_QUERY' })
    await t.rejects(app.notify.presence({ stream: 'nope' }), { code: 'FST_NOTIFY_UNKNOWN_STREAM' })
  }

  const names = amqpNames(t)
  const overGrpc = await publisherApp(t, { grpc: { address: '127.0.0.1:1', apiKey: API_KEY } })
  const overAmqp = await publisherApp(t, { amqp: { url: AMQP_URL, exchange: names.exchange } })
  for (const { app } of [overGrpc, overAmqp]) {
    await t.rejects(app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_DISABLED', statusCode: 501 })
  }
})

t.test('presence from a publisher maps the edge\'s faults onto the same codes', async (t) => {
  const noPresence = await build(t, { presence: false })
  const disabled = await publisherApp(t, { http: { url: noPresence.http, apiKey: API_KEY } })
  await t.rejects(disabled.app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_DISABLED', statusCode: 501 }, 'an edge without presence')
  const fewer = await build(t, { streams: STREAMS.filter((s) => s.name !== 'promotional') })
  const mismatched = await publisherApp(t, { http: { url: fewer.http, apiKey: API_KEY } })
  await t.rejects(mismatched.app.notify.presence({ stream: 'promotional' }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH' }, 'a stream the edge lacks')
  const wrongKey = await publisherApp(t, { http: { url: fewer.http, apiKey: 'another-key-0123456789' } })
  await t.rejects(wrongKey.app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_EDGE_REFUSED' })
  const unreachable = await publisherApp(t, { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY } })
  await t.rejects(unreachable.app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_UNAVAILABLE', statusCode: 503 })
  const noRedis = await publisherApp(t, { redis: 'redis://127.0.0.1:1', readyTimeout: 100 })
  await t.rejects(noRedis.app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_UNAVAILABLE', statusCode: 503 })
})
