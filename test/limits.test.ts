import t from 'tap'
import Fastify from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { notifyEdge } from '../plugins/index.js'
import { Admission, admission, frameDue } from '../plugins/streams/limits.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, build, connect, connectUser, handshakeStatus, publish, ticket, token, urls, type Client } from './helpers.js'

async function pongsAndErrors (client: Client, sent: number): Promise<{ pongs: number, limited: number }> {
  let pongs = 0
  let limited = 0
  while (pongs + limited < sent && client.closeCode === null) {
    const frame = await client.next((f) => f.event === 'pong' || f.event === 'error').catch(() => null)
    if (frame === null) break
    if (frame.event === 'pong') pongs++
    else if (frame.code === 'RATE_LIMITED') limited++
  }
  return { pongs, limited }
}

t.test('an inbound frame over 64 KiB closes the socket with 1009', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  client.send({ event: 'ping', id: 'x'.repeat(64 * 1024) })
  t.equal(await client.closed, 1009)
})

t.test('a frame just under the limit is handled (and its oversized id refused)', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  client.send({ event: 'ping', id: 'x'.repeat(60 * 1024) })
  t.match(await client.event('error'), { code: 'BAD_REQUEST' })
  t.equal(client.closeCode, null)
})

t.test('subscriptions over maxSubscriptions are refused with TOO_MANY_SUBSCRIPTIONS', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', maxSubscriptions: 2 }] })
  const alice = await connectUser(t, edge, 'alice')
  t.same((await alice.subscribe('order', 'reward')).streams, ['order', 'reward'])
  alice.send({ event: 'subscribe', streams: ['promotional'], id: 's3' })
  t.match(await alice.event('error'), { code: 'TOO_MANY_SUBSCRIPTIONS', stream: 'promotional', id: 's3' })
  t.same((await alice.event('subscribed')).streams, [])
  t.same((await alice.subscribe('order')).streams, ['order'], 'a stream already held is fine')
})

t.test('frames over the rate are answered RATE_LIMITED; a client that pauses is served again', async (t) => {
  const edge = await build(t, { routes: [{ path: '/public', anonymous: true, frameRate: { perSecond: 50, burst: 5 } }] })
  const { client } = await connect(t, `${edge.ws}/public`)
  for (let i = 0; i < 8; i++) client.send({ event: 'ping' })
  const { pongs, limited } = await pongsAndErrors(client, 8)
  t.ok(pongs >= 5 && pongs < 8, `${pongs} pongs`)
  t.ok(limited >= 1, `${limited} RATE_LIMITED`)
  t.equal(pongs + limited, 8, 'every frame answered')
  await new Promise((resolve) => setTimeout(resolve, 200)) // the bucket refills with time, not with events
  await client.request({ event: 'ping' }, 'pong')
  t.equal(client.closeCode, null)
  t.ok(edge.app.notifyStreams.get('/public')!.stats.rateLimited >= 1)
})

t.test('the frame-rate bucket: exactly burst frames at once, rejected frames dig a debt, a pause refills', async (t) => {
  const rate = { perSecond: 20, burst: 5 }
  // Times in ms (50 ms a token), off a token boundary, as performance.now() is.
  let due = 0
  const admit = (now: number): number => {
    due = frameDue(due, rate, now)
    return admission(due, rate, now)
  }
  const at = 1_000_037
  const frames = (count: number, now: number): number[] => Array.from({ length: count }, () => admit(now))
  t.same(frames(5, at), Array(5).fill(Admission.OK), 'a burst of five at once passes')
  t.same(frames(5, at), Array(5).fill(Admission.LIMITED), 'the next five are limited, each costing a token')
  t.equal(admit(at), Admission.ABUSE, 'a debt of burst is abuse')
  t.equal(admit(at + 100), Admission.LIMITED, 'two tokens later, less one for this frame, the debt is under burst: limited')
  t.same(frames(6, at + 1000), [...Array(5).fill(Admission.OK), Admission.LIMITED], 'a long enough pause refills exactly burst')
})

t.test('a client that keeps sending while rate limited is closed with 1008', async (t) => {
  const edge = await build(t, { routes: [{ path: '/public', anonymous: true, frameRate: { perSecond: 5, burst: 10 } }] })
  const { client } = await connect(t, `${edge.ws}/public`)
  for (let i = 0; i < 40; i++) client.send({ event: 'ping' })
  t.equal(await client.closed, 1008)
  const { stats } = edge.app.notifyStreams.get('/public')!
  t.equal(stats.policyCloses, 1)
  t.ok(stats.rateLimited >= 5 && stats.rateLimited <= 12, `${stats.rateLimited} frames refused before the close`)
})

t.test('the tenth bad frame closes the socket with 1008', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  for (let i = 0; i < 9; i++) client.send('not json')
  for (let i = 0; i < 9; i++) t.match(await client.event('error'), { code: 'BAD_REQUEST' })
  await client.request({ event: 'ping' }, 'pong')
  client.send({ event: 'nope' })
  t.match(await client.event('error'), { code: 'UNKNOWN_EVENT' })
  t.equal(await client.closed, 1008)
})

t.test('maxConnectionsPerUser refuses the handshake over the cap with 429', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', maxConnectionsPerUser: 2 }] })
  const first = await connectUser(t, edge, 'alice')
  await connectUser(t, edge, 'alice')
  const url = async (user: string): Promise<string> => `${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, user))}`
  t.equal(await handshakeStatus(await url('alice')), 429)
  t.equal(await handshakeStatus(await url('bob')), 101, 'another user is not affected')
  await first.close()
  t.equal(await handshakeStatus(await url('alice')), 101, 'a slot frees up when a socket closes')
})

t.test('the ticket route is rate limited per user, and per IP for bad tokens, and nothing else is', async (t) => {
  const edge = await build(t, { tickets: { rateLimit: { max: 3, timeWindow: 60_000 } } })
  const post = (jwt: string): Promise<Response> =>
    fetch(`${edge.http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })
  const alice = token(edge.app, 'alice')
  for (let i = 0; i < 3; i++) t.equal((await post(alice)).status, 200)
  const refused = await post(alice)
  t.equal(refused.status, 429)
  t.match(await refused.json(), { code: 'FST_NOTIFY_TICKET_RATE_LIMITED' })
  t.equal((await post(token(edge.app, 'bob'))).status, 200, 'another user has their own budget')
  for (let i = 0; i < 3; i++) t.equal((await post('garbage')).status, 401)
  t.equal((await post('garbage')).status, 429, 'bad tokens share the budget of their address')
  for (let i = 0; i < 10; i++) {
    t.equal((await publish(edge.http, { stream: 'promotional', data: {} })).status, 202)
  }
  t.equal((await fetch(`${edge.http}/ws/ticket`, { method: 'GET' })).status, 404)
})

t.test('with @fastify/rate-limit registered by the app, the ticket route uses it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(rateLimit, { global: false })
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, publishApi: { apiKey: API_KEY }, tickets: { rateLimit: { max: 1 } } })
  app.get('/other', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { http } = urls(app)
  const jwt = token(app, 'alice')
  t.ok(await ticket(http, jwt))
  t.equal((await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })).status, 429)
  for (let i = 0; i < 3; i++) t.equal((await fetch(`${http}/other`)).status, 200)
})

t.test('limits can be switched off, and bad limits fail registration', async (t) => {
  const edge = await build(t, { tickets: { rateLimit: false }, routes: [{ path: '/public', anonymous: true, frameRate: false }] })
  const { client } = await connect(t, `${edge.ws}/public`)
  for (let i = 0; i < 100; i++) client.send({ event: 'ping' })
  t.same(await pongsAndErrors(client, 100), { pongs: 100, limited: 0 })
  for (const bad of [
    { routes: [{ path: '/ws', frameRate: 'fast' as unknown as false }] },
    { routes: [{ path: '/ws', frameRate: { perSecond: 0 } }] },
    { routes: [{ path: '/ws', maxBadFrames: 1.5 }] },
    { routes: [{ path: '/ws', maxConnectionsPerUser: 0 }] },
    { tickets: { rateLimit: 'x' as unknown as false } },
    { tickets: { rateLimit: { max: -1 } } }
  ]) {
    await t.rejects(build(t, bad), { code: 'FST_NOTIFY_INVALID_OPTION' })
  }
})
