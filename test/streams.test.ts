import t from 'tap'
import type { Principal, StreamDefinition } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, connect, connectUser, publish, token, type Client } from './helpers.js'

const order = (orderId: string): { orderId: string, status: string } => ({ orderId, status: 'placed' })

/** Proves nothing more is on its way: a ping's pong comes after anything published before it. */
async function nothingElse (client: Client): Promise<unknown[]> {
  await client.request({ event: 'ping' }, 'pong')
  return client.messages()
}

t.test('the first frame is welcome, with the connection id, the user and the expiry', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice', '10m')
  const { welcome } = await connect(t, `${edge.ws}/ws?token=${jwt}`)
  t.same(Object.keys(welcome).sort(), ['connection', 'event', 'expiresAt', 'user'])
  t.match(welcome.connection, /^[0-9a-f]{8}-[0-9a-f]{4}[0-9a-z]+$/, 'a random prefix for the process, then a serial')
  t.equal(welcome.user, 'alice')
  t.equal(welcome.expiresAt, (edge.app.jwt.decode(jwt) as { exp: number }).exp * 1000)
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  t.same([connection.id, connection.principal.user], [welcome.connection, 'alice'], 'the route lists it with its principal')
  const other = await connect(t, `${edge.ws}/public`)
  t.not(other.welcome.connection, welcome.connection, 'connection ids are unique')
  t.same([other.welcome.user, other.welcome.expiresAt], [null, null], 'anonymous')
})

t.test('a private message reaches only its user, once on every connection that user holds', async (t) => {
  const edge = await build(t)
  const alice1 = await connectUser(t, edge, 'alice')
  const alice2 = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  for (const c of [alice1, alice2, bob]) t.same((await c.subscribe('order')).streams, ['order'])
  const res = await publish(edge.http, { stream: 'order', user: 'alice', data: order('1') })
  t.equal(res.status, 202)
  for (const c of [alice1, alice2]) {
    const m = await c.event('message')
    t.same(m, { event: 'message', stream: 'order', id: res.body.id, ts: m.ts, data: order('1') })
    t.same(await nothingElse(c), [], 'exactly once')
  }
  t.same(await nothingElse(bob), [], 'bob never sees alice\'s message')

  const forBob = await publish(edge.http, { stream: 'order', user: 'bob', data: order('2') })
  t.equal((await bob.event('message')).id, forBob.body.id)
  for (const c of [alice1, alice2]) t.same(await nothingElse(c), [], 'and alice never sees bob\'s')
})

t.test('a plain GET of a WebSocket route is answered 404, and its keep-alive connection still serves', async (t) => {
  const edge = await build(t)
  const url = `${edge.http}/ws?token=${token(edge.app, 'alice')}`
  t.equal((await fetch(url, { signal: AbortSignal.timeout(5000) })).status, 404)
  t.equal((await fetch(url, { signal: AbortSignal.timeout(5000) })).status, 404, 'the second request on the same connection')
})

t.test('subscribing is idempotent: twice, or twice in one frame, delivers once', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  t.same((await alice.subscribe('order', 'order', { stream: 'order' })).streams, ['order'])
  t.same((await alice.subscribe('order')).streams, ['order'])
  t.equal(edge.app.notifyBus.topicCount(), 1)
  await publish(edge.http, { stream: 'order', user: 'alice', data: order('1') })
  await alice.event('message')
  t.same(await nothingElse(alice), [])
})

t.test('unsubscribe stops delivery and releases the topic', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order', 'promotional')
  t.equal(edge.app.notifyBus.topicCount(), 2)
  t.same((await alice.request({ event: 'unsubscribe', streams: ['order'] }, 'unsubscribed')).streams, ['order'])
  t.equal(edge.app.notifyBus.topicCount(), 1, 'alice\'s order topic is gone from the bus')
  await publish(edge.http, { stream: 'order', user: 'alice', data: order('1') })
  await publish(edge.http, { stream: 'promotional', data: { text: 'still here' } })
  t.equal((await alice.event('message')).stream, 'promotional')
  t.same(await nothingElse(alice), [], 'no order message')
  t.same((await alice.request({ event: 'unsubscribe', streams: ['order', 'reward'] }, 'unsubscribed')).streams,
    ['order', 'reward'], 'unsubscribing from a stream not held is fine')
})

t.test('an unsubscribe after a subscribe in the same burst is applied in order', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  alice.send({ event: 'subscribe', streams: ['order'], id: 's' })
  alice.send({ event: 'unsubscribe', streams: ['order'], id: 'u' })
  t.same(await alice.event('subscribed'), { event: 'subscribed', streams: ['order'], id: 's', positions: { order: '0-0' } })
  t.same(await alice.event('unsubscribed'), { event: 'unsubscribed', streams: ['order'], id: 'u' })
  t.equal(edge.app.notifyBus.topicCount(), 0)
})

t.test('a public message reaches every subscriber on every route, with one bus topic', async (t) => {
  const edge = await build(t)
  const clients = [
    ...await Promise.all(['alice', 'bob', 'carol'].map((user) => connectUser(t, edge, user))),
    ...await Promise.all([1, 2, 3].map(async () => (await connect(t, `${edge.ws}/public`)).client))
  ]
  for (const c of clients) await c.subscribe('promotional')
  t.equal(edge.app.notifyBus.topicCount(), 1)
  const res = await publish(edge.http, { stream: 'promotional', data: { text: '10% off' } })
  for (const c of clients) {
    t.match(await c.event('message'), { stream: 'promotional', id: res.body.id, data: { text: '10% off' } })
    t.same(await nothingElse(c), [])
  }
})

t.test('messages arrive in publish order with increasing ids', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push((await edge.app.notify.publish({ stream: 'order', user: 'alice', data: order(String(i)) }) as { id: string }).id)
  const received = []
  for (let i = 0; i < 20; i++) received.push(await alice.event('message'))
  t.same(received.map((m) => m.data.orderId), ids.map((_, i) => String(i)))
  t.same(received.map((m) => m.id), ids)
  const parts = (id: string): number[] => id.split('-').map(Number)
  for (let i = 1; i < ids.length; i++) {
    const [a, b] = [parts(ids[i - 1]), parts(ids[i])]
    t.ok(b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]), `${ids[i - 1]} < ${ids[i]}`)
  }
})

t.test('an authorize hook decides who may subscribe; a refusal is FORBIDDEN for that stream only', async (t) => {
  const seen: Array<[string | null, string]> = []
  const streams: StreamDefinition[] = [
    ...STREAMS,
    { name: 'vip', kind: 'public', authorize: async (principal: Principal, stream: string) => { seen.push([principal.user, stream]); return principal.user === 'alice' } },
    { name: 'staff', kind: 'private', authorize: (principal: Principal) => principal.user === 'bob' }
  ]
  const edge = await build(t, { streams })
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')

  alice.send({ event: 'subscribe', streams: ['vip', 'staff', 'order'], id: 'a' })
  t.match(await alice.event('error'), { event: 'error', code: 'FORBIDDEN', stream: 'staff', id: 'a' })
  t.same(await alice.event('subscribed'), { event: 'subscribed', streams: ['vip', 'order'], id: 'a', positions: { order: '0-0' } }, 'no position for vip: it keeps no history')

  bob.send({ event: 'subscribe', streams: ['vip', 'staff'], id: 'b' })
  t.match(await bob.event('error'), { code: 'FORBIDDEN', stream: 'vip', id: 'b' })
  t.same((await bob.event('subscribed')).streams, ['staff'])
  t.same(seen, [['alice', 'vip'], ['bob', 'vip']], 'the hook sees the principal and the stream')

  await publish(edge.http, { stream: 'vip', data: { text: 'for alice' } })
  t.equal((await alice.event('message')).stream, 'vip')
  t.same(await nothingElse(bob), [])
})

t.test('an authorize hook that throws closes the connection with 1011 and releases it', async (t) => {
  const streams: StreamDefinition[] = [...STREAMS, { name: 'flaky', kind: 'public', authorize: () => { throw new Error('db down') } }]
  const edge = await build(t, { streams })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  alice.send({ event: 'subscribe', streams: ['flaky'] })
  t.equal(await alice.closed, 1011)
  await connection.closed
  t.equal(edge.app.notifyBus.topicCount(), 0)
})

t.test('TOO_MANY_SUBSCRIPTIONS past the route\'s maxSubscriptions, other streams still accepted', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', maxSubscriptions: 2 }] })
  const alice = await connectUser(t, edge, 'alice')
  t.same((await alice.subscribe('order', 'reward')).streams, ['order', 'reward'])
  alice.send({ event: 'subscribe', streams: ['promotional', 'order'], id: 'x' })
  t.match(await alice.event('error'), { code: 'TOO_MANY_SUBSCRIPTIONS', stream: 'promotional', id: 'x' })
  t.same((await alice.event('subscribed')).streams, ['order'], 'streams already held stay accepted')
  await alice.request({ event: 'unsubscribe', streams: ['reward'] }, 'unsubscribed')
  t.same((await alice.subscribe('promotional')).streams, ['promotional'], 'room again after an unsubscribe')
})

t.test('anonymous /public cannot subscribe to a private stream', async (t) => {
  const edge = await build(t)
  const { client, welcome } = await connect(t, `${edge.ws}/public`)
  t.equal(welcome.user, null)
  client.send({ event: 'subscribe', streams: ['order', 'promotional', 'reward'], id: 'c1' })
  t.match(await client.event('error'), { code: 'FORBIDDEN', stream: 'order', id: 'c1' })
  t.match(await client.event('error'), { code: 'FORBIDDEN', stream: 'reward', id: 'c1' })
  t.same((await client.event('subscribed')).streams, ['promotional'])
})

t.test('a correlation id is echoed back as given, string or number', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  client.send({ event: 'ping', id: 7 })
  t.same(await client.event('pong'), { event: 'pong', id: 7 })
  client.send({ event: 'ping' })
  t.same(await client.event('pong'), { event: 'pong' }, 'no id, no id field')
  client.send({ event: 'subscribe', streams: ['system'], id: 'x'.repeat(128) })
  t.equal((await client.event('subscribed')).id, 'x'.repeat(128))
})
