import t from 'tap'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import fastifyRedis from '@fastify/redis'
import { MemoryTicketStore, notifyEdge } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, build, handshakeStatus, publish, ticket, token } from './helpers.js'
import { redisServer, scanKeys, sharedRedis, until } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

function admin (t: Test, url: string): Redis {
  const redis = new Redis(url)
  t.teardown(() => redis.disconnect())
  return redis
}

t.test('with a redis URL, the bus and tickets run on Redis and app.redis is registered', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const a = await build(t, { redis: url, topicPrefix: prefix })
  const b = await build(t, { redis: url, topicPrefix: prefix })
  t.equal(a.app.notifyBus.health().backend, 'redis')
  t.equal(a.app.redis.status, 'ready')
  const one = await ticket(a.http, token(a.app, 'alice'))
  t.same(await scanKeys(admin(t, url), `${prefix}:ticket:`), [`${prefix}:ticket:${one}`], 'kept under <topicPrefix>:ticket:')
  t.equal(await handshakeStatus(`${b.ws}/ws?ticket=${one}`), 101, 'redeemed on the other instance')
  t.equal(await handshakeStatus(`${a.ws}/ws?ticket=${one}`), 401, 'and only once')
})

t.test('closing the app ends every Redis connection the edge opened', async (t) => {
  const server = await redisServer(t)
  const probe = admin(t, server.url)
  const clients = async (): Promise<number> => (await probe.client('LIST') as string).trim().split('\n').length
  const before = await clients()
  const { app } = await build(t, { redis: server.url })
  t.equal(await clients(), before + 3, 'bus publisher, bus subscriber, app.redis')
  await app.close()
  t.equal(app.redis.status, 'end')
  await until('Redis to see them gone', async () => await clients() === before)
  t.equal(await clients(), before)
})

t.test('with { client }, the edge reuses that client and leaves it open', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const client = admin(t, url)
  const edge = await build(t, { redis: { client }, topicPrefix: prefix })
  const one = await ticket(edge.http, token(edge.app, 'alice'))
  t.ok(await client.exists(`${prefix}:ticket:${one}`), 'tickets go through it')
  t.equal(edge.app.hasDecorator('redis'), false, 'no @fastify/redis of its own')
  await edge.app.close()
  t.equal(await client.ping(), 'PONG')
})

t.test('an explicit ticket store wins over redis', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const store = new MemoryTicketStore()
  const edge = await build(t, { redis: url, topicPrefix: prefix, tickets: { store } })
  await ticket(edge.http, token(edge.app, 'alice'))
  t.equal(store.size, 1)
  t.same(await scanKeys(admin(t, url), `${prefix}:ticket:`), [])
})

t.test('refuses a redis URL when app.redis is registered already', async (t) => {
  const { url } = await sharedRedis(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyRedis, { url })
  await t.rejects((async () => {
    await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, redis: url })
    await app.ready()
  })(), { code: 'FST_NOTIFY_INVALID_OPTION', message: /redis: \{ client: app\.redis \}/ })
})

t.test('while Redis is down, tickets and publishes answer 503 at once and the app still closes', async (t) => {
  const server = await redisServer(t)
  const edge = await build(t, { redis: server.url, publishApi: { apiKey: API_KEY } })
  const jwt = token(edge.app, 'alice')
  await server.stop()
  await until('the edge to notice', () => edge.app.notifyBus.health().healthy === false && edge.app.redis.status !== 'ready')

  let started = Date.now()
  const res = await fetch(`${edge.http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })
  t.equal(res.status, 503)
  t.equal((await res.json() as { code: string }).code, 'FST_NOTIFY_TICKET_STORE_UNAVAILABLE')
  t.ok(Date.now() - started < 500, `ticket answered in ${Date.now() - started} ms`)

  started = Date.now()
  const published = await publish(edge.http, { stream: 'promotional', data: {} })
  t.equal(published.status, 503)
  t.equal(published.body.code, 'FST_NOTIFY_BUS_UNAVAILABLE')
  t.ok(Date.now() - started < 500, `publish answered in ${Date.now() - started} ms`)

  started = Date.now()
  await edge.app.close()
  t.ok(Date.now() - started < 2000, `closed in ${Date.now() - started} ms`)
})
