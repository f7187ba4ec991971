import t from 'tap'
import Fastify from 'fastify'
import { notifyEdge } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { orderRoutes } from '../example-app/orders.js'
import { API_KEY, SECRET, build, connectUser, urls, type Client, type Edge, type Frame } from './helpers.js'
import { sharedRedis } from './redis-server.js'
import { cleanUpKeys, placeOrder, publisherApp } from './split-helpers.js'

// One order service module (example-app/orders.ts), unchanged, run embedded in the edge and split
// out behind the publisher: the client sees the same frames (SPEC section 11).

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

  const edge: Edge = await build(t, { redis: url, topicPrefix: prefix })
  const overRedis = await publisherApp(t, { redis: url, topicPrefix: prefix }, STEP_MS)
  t.notOk(overRedis.app.hasDecorator('notifyBus'), 'the publisher runs no bus and no sockets')
  const overHttp = await publisherApp(t, { http: { url: edge.http, apiKey: API_KEY } }, STEP_MS)
  const client = await connectUser(t, edge, 'alice')
  const redisFrames = await orderFrames(client, overRedis.http)
  const httpFrames = await orderFrames(client, overHttp.http)

  t.same(shape(redisFrames), shape(embeddedFrames))
  t.same(shape(httpFrames), shape(embeddedFrames))
  increasing(t, [...redisFrames, ...httpFrames])

  // Same history as an in-edge publish: a client resuming from the first message gets the rest.
  const resumed = await connectUser(t, edge, 'alice')
  const subscribed = await resumed.subscribe({ stream: 'order', since: redisFrames[0].id })
  t.same(subscribed.gaps, [])
  const replayed = [...redisFrames.slice(1), ...httpFrames]
  for (const frame of replayed) t.same(await resumed.event('message'), frame)
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

t.test('the publisher answers who was offline as the edge does, over Redis and HTTP, and tells onOffline', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const edge = await build(t, { redis: url, topicPrefix: prefix })
  const told: Array<{ users: string[], ids: string[] }> = []
  const overRedis = await publisherApp(t, { redis: url, topicPrefix: prefix, onOffline: (users, message) => { told.push({ users, ids: message.ids }) } })
  const overHttp = await publisherApp(t, { http: { url: edge.http, apiKey: API_KEY } })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('reward')
  for (const { app } of [overRedis, overHttp]) {
    t.match(await app.notify.publish({ stream: 'reward', user: 'alice', data: 1 }), { id: String, online: true })
    t.match(await app.notify.publish({ stream: 'reward', user: 'bob', data: 2 }), { id: String, online: false })
    const many = await app.notify.publish({ stream: 'reward', users: ['alice', 'bob', 'carol'], data: 3 }) as { ids: string[], offline: string[] }
    t.same(many.offline, ['bob', 'carol'])
    t.same(Object.keys(await app.notify.publish({ stream: 'promotional', data: 4 })), ['id'], 'a public stream answers its id only')
    await t.rejects(app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_DISABLED' })
  }
  t.same(told.map((m) => m.users), [['bob'], ['bob', 'carol']])
})
