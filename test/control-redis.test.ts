// Control across two edges on a private Redis (SPEC section 15), with real sockets: disconnect and
// revoke reach every instance, a handshake racing a revocation never keeps a socket, a Redis
// restart as docs/control.md says, the publisher's control over Redis and over HTTP.
import Fastify from 'fastify'
import t from 'tap'
import WebSocket from 'ws'
import { Redis } from 'ioredis'
import { notifyPublisher } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, claims, connect, handshakeStatus, requestTicket, signJwt, ticket, type Edge } from './helpers.js'
import { redisServer, until } from './redis-server.js'

const ADMIN_KEY = 'admin-key-0123456789abcdef'
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

function jwtFor (sub: string): { jwt: string, jti: string, exp: number } {
  const jti = `j-${Math.random().toString(36).slice(2)}`
  const base = claims(sub)
  return { jwt: signJwt({ ...base, jti }, 'HS256'), jti, exp: base.exp as number }
}

async function edges (t: Test, url: string, prefix: string, count = 2): Promise<Edge[]> {
  const built: Edge[] = []
  for (let i = 0; i < count; i++) built.push(await build(t, { redis: url, topicPrefix: prefix, admin: { apiKey: ADMIN_KEY } }))
  return built
}

async function adminCall (edge: Edge, action: string, body: unknown): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${edge.http}/admin/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

t.test('disconnect and subscribe reach the user\'s sockets on every instance', async (t) => {
  const server = await redisServer(t)
  const prefix = `ctl${Math.random().toString(36).slice(2, 8)}`
  const [a, b] = await edges(t, server.url, prefix)
  const onA = (await connect(t, `${a.ws}/ws?token=${jwtFor('alice').jwt}`)).client
  const onB = (await connect(t, `${b.ws}/ws?ticket=${await ticket(b.http, jwtFor('alice').jwt)}`)).client
  const bob = (await connect(t, `${b.ws}/ws?token=${jwtFor('bob').jwt}`)).client
  t.same((await adminCall(a, 'subscribe', { user: 'alice', streams: ['order'] })).body, { instances: 2, connections: 2 })
  t.same((await onB.event('subscribed')).streams, ['order'])
  t.same((await onA.event('subscribed')).streams, ['order'])
  const started = Date.now()
  t.same((await adminCall(a, 'disconnect', { user: 'alice' })).body, { instances: 2, connections: 2 })
  t.equal(await onA.closed, 4003)
  t.equal(await onB.closed, 4003)
  t.ok(Date.now() - started < 1000, 'within a second')
  t.equal((await bob.request({ event: 'ping' }, 'pong')).event, 'pong')
})

t.test('revoke: every instance closes the token\'s sockets and refuses it, even one that verified it before; a handshake racing it keeps no socket', async (t) => {
  const server = await redisServer(t)
  const prefix = `ctl${Math.random().toString(36).slice(2, 8)}`
  const [a, b] = await edges(t, server.url, prefix)
  const leaked = jwtFor('alice')
  const onB = (await connect(t, `${b.ws}/ws?token=${leaked.jwt}`)).client
  // B has verified this token and issued tickets for it (and the rate limiter keyed on it).
  const early = await ticket(b.http, leaked.jwt)
  await ticket(b.http, leaked.jwt)
  // A client reconnecting with resume at the moment of the revocation: the handshake is in flight.
  const racing = new WebSocket(`${b.ws}/ws?token=${leaked.jwt}`)
  const racingEnd = new Promise<number>((resolve) => {
    racing.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); racing.terminate() })
    racing.once('open', () => racing.send(JSON.stringify({ event: 'subscribe', streams: [{ stream: 'order', since: '0' }] })))
    racing.once('close', (code) => resolve(code))
  })
  const result = await adminCall(a, 'revoke', { jti: leaked.jti, exp: leaked.exp })
  t.equal(result.status, 200)
  t.equal(result.body.instances, 2)
  t.equal(await onB.closed, 4003)
  t.ok([401, 4003].includes(await racingEnd), 'the racing handshake is refused or closed with 4003')
  for (const edge of [a, b]) {
    t.equal((await requestTicket(edge.http, { authorization: `Bearer ${leaked.jwt}` })).status, 401, 'no ticket')
    t.equal(await handshakeStatus(`${edge.ws}/ws?token=${leaked.jwt}`), 401, 'no handshake')
  }
  t.equal(await handshakeStatus(`${a.ws}/ws?ticket=${early}`), 401, 'a ticket issued before, redeemed on the other instance')
  t.equal(await handshakeStatus(`${b.ws}/ws?token=${jwtFor('alice').jwt}`), 101, 'another token of the user')
})

t.test('revocations survive a Redis restart while an instance runs, and reach an instance started after it', async (t) => {
  const server = await redisServer(t)
  const prefix = `ctl${Math.random().toString(36).slice(2, 8)}`
  const [a] = await edges(t, server.url, prefix, 1)
  const leaked = jwtFor('alice')
  t.equal((await adminCall(a, 'revoke', { jti: leaked.jti, exp: leaked.exp })).status, 200)
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  t.teardown(() => redis.disconnect())
  t.equal(await redis.zcard(`${prefix}:revoked`), 1, 'in Redis')
  t.ok(await redis.pttl(`${prefix}:revoked`) > 3_000_000, 'expiring with the token')
  await server.stop()
  await server.start()
  t.equal(await redis.exists(`${prefix}:revoked`), 0, 'an empty Redis after the restart')
  // The running instance writes its copy back once its bus has re-subscribed.
  await until('the list written back', async () => await redis.zcard(`${prefix}:revoked`) === 1, 15_000)
  t.equal((await requestTicket(a.http, { authorization: `Bearer ${leaked.jwt}` })).status, 401, 'still refused where it was known')
  const [late] = await edges(t, server.url, prefix, 1)
  await until('the new instance loaded the list', () => late.app.notifyRevocations.size === 1)
  t.equal((await requestTicket(late.http, { authorization: `Bearer ${leaked.jwt}` })).status, 401, 'refused by an instance started after the restart')
})

t.test('a publisher controls the edges over Redis and over HTTP', async (t) => {
  const server = await redisServer(t)
  const prefix = `ctl${Math.random().toString(36).slice(2, 8)}`
  const [a, b] = await edges(t, server.url, prefix)
  const overRedis = Fastify({ logger: false })
  t.teardown(() => overRedis.close())
  await overRedis.register(notifyPublisher, { streams: STREAMS, topicPrefix: prefix, redis: server.url })
  await overRedis.ready()
  const overHttp = Fastify({ logger: false })
  t.teardown(() => overHttp.close())
  await overHttp.register(notifyPublisher, { streams: STREAMS, http: { url: a.http, apiKey: 'test-api-key-0123456789', adminApiKey: ADMIN_KEY } })
  const noAdmin = Fastify({ logger: false })
  t.teardown(() => noAdmin.close())
  await noAdmin.register(notifyPublisher, { streams: STREAMS, http: { url: a.http, apiKey: 'test-api-key-0123456789' } })

  const first = (await connect(t, `${b.ws}/ws?token=${jwtFor('alice').jwt}`)).client
  t.same(await overRedis.notify.subscribe({ user: 'alice', streams: ['order'] }), { instances: 2, connections: null })
  t.same((await first.event('subscribed')).streams, ['order'])
  t.same(await overRedis.notify.disconnect({ user: 'alice' }), { instances: 2, connections: null })
  t.equal(await first.closed, 4003)

  const leaked = jwtFor('alice')
  const second = (await connect(t, `${b.ws}/ws?token=${leaked.jwt}`)).client
  t.same(await overRedis.notify.revoke({ jti: leaked.jti, exp: leaked.exp }), { instances: 2, connections: null })
  t.equal(await second.closed, 4003)
  await until('both edges know', () => a.app.notifyRevocations.size === 1 && b.app.notifyRevocations.size === 1)

  const third = (await connect(t, `${a.ws}/ws?token=${jwtFor('carol').jwt}`)).client
  t.same(await overHttp.notify.disconnect({ user: 'carol' }), { instances: 2, connections: 1 })
  t.equal(await third.closed, 4003)
  await t.rejects(overHttp.notify.disconnect({ user: '' }), { code: 'FST_NOTIFY_BAD_ADMIN_REQUEST' }, 'checked before sending')
  await t.rejects(noAdmin.notify.disconnect({ user: 'carol' }), { code: 'FST_NOTIFY_CONTROL_DISABLED' })

  await server.stop()
  await t.rejects(overRedis.notify.disconnect({ user: 'alice' }), { code: 'FST_NOTIFY_CONTROL_UNAVAILABLE' })
  await t.rejects(a.app.notify.revoke({ jti: 'x', exp: leaked.exp }), { code: 'FST_NOTIFY_CONTROL_UNAVAILABLE', statusCode: 503 })
})

t.test('the HTTP publisher: an edge that is down or refuses the key', async (t) => {
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY } })
  const wrongKey = Fastify({ logger: false })
  t.teardown(() => wrongKey.close())
  await wrongKey.register(notifyPublisher, { streams: STREAMS, http: { url: edge.http, apiKey: 'test-api-key-0123456789', adminApiKey: 'wrong-admin-key-0123456789' } })
  await t.rejects(wrongKey.notify.disconnect({ user: 'alice' }), { code: 'FST_NOTIFY_EDGE_REFUSED' })
  const down = Fastify({ logger: false })
  t.teardown(() => down.close())
  await down.register(notifyPublisher, { streams: STREAMS, http: { url: 'http://127.0.0.1:1', apiKey: 'test-api-key-0123456789', adminApiKey: ADMIN_KEY } })
  await t.rejects(down.notify.disconnect({ user: 'alice' }), { code: 'FST_NOTIFY_CONTROL_UNAVAILABLE' })
  const bad = Fastify({ logger: false })
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(notifyPublisher, { streams: STREAMS, http: { url: edge.http, apiKey: 'test-api-key-0123456789', adminApiKey: 'short' } }) }, { code: 'FST_NOTIFY_INVALID_OPTION' })
})
