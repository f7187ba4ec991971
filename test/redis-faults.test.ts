import t from 'tap'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { API_KEY, SECRET, build, connect, publish, ticket, urls, watchProcessFailures, type Client } from './helpers.js'
import { redisServer, until } from './redis-server.js'

async function exampleApp (t: { teardown: (fn: () => unknown) => void }, redisUrl: string): Promise<{ app: FastifyInstance, http: string, ws: string }> {
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, REDIS_URL: redisUrl })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

/** Polls `/health` (as a load balancer would) until it answers `status`; there is no event to wait on from outside. */
async function healthBecomes (http: string, status: number, timeout = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeout
  for (;;) {
    const res = await fetch(`${http}/health`)
    const body = await res.json() as Record<string, unknown>
    if (res.status === status) return body
    if (Date.now() > deadline) throw new Error(`/health still ${res.status}: ${JSON.stringify(body)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

t.test('while Redis is down sockets stay open, publishes answer 503 within a second, /health is degraded; then delivery resumes on the same sockets', async (t) => {
  const failures = watchProcessFailures(t)
  const redis = await redisServer(t)
  const a = await exampleApp(t, redis.url)
  const b = await exampleApp(t, redis.url)
  const jwt = a.app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' })
  const { client: alice, welcome } = await connect(t, `${a.ws}/ws?ticket=${await ticket(a.http, jwt)}`)
  t.same((await alice.subscribe('reward', 'promotional')).streams, ['reward', 'promotional'])
  const before = await publish(b.http, { stream: 'reward', user: 'alice', data: { n: 0 } })
  t.equal((await alice.event('message')).id, before.body.id, 'across instances before the outage')

  await redis.stop()
  for (const edge of [a, b]) {
    const started = Date.now()
    const res = await publish(edge.http, { stream: 'reward', user: 'alice', data: { n: 1 } })
    t.equal(res.status, 503)
    t.equal(res.body.code, 'FST_NOTIFY_BUS_UNAVAILABLE')
    t.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`)
  }
  const degraded = await healthBecomes(a.http, 503)
  t.equal(degraded.status, 'degraded')
  t.equal((await fetch(`${a.http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })).status, 503, 'no ticket while the store is away')
  t.equal((await alice.request({ event: 'ping' }, 'pong')).event, 'pong', 'the socket is open and served')
  t.equal(a.app.notifyStreams.get('/ws')!.connections.size, 1)

  await redis.start()
  await healthBecomes(a.http, 200)
  await healthBecomes(b.http, 200)
  const after = await publish(b.http, { stream: 'reward', user: 'alice', data: { n: 2 } })
  t.equal(after.status, 202)
  t.equal((await alice.event('message', 5000)).id, after.body.id, 'a private message from the other instance arrives')
  const promo = await publish(a.http, { stream: 'promotional', data: { n: 3 } })
  t.equal((await alice.event('message', 5000)).id, promo.body.id, 'and a public one')
  t.equal(alice.closeCode, null, 'without reconnecting')
  t.equal((await alice.request({ event: 'ping' }, 'pong')).event, 'pong')
  t.not(welcome.connection, undefined)
  t.same(failures, [], 'no unhandled rejection or exception')
})

t.test('app.close() while Redis is down ends within drainTimeout + 1 s', async (t) => {
  const failures = watchProcessFailures(t)
  const redis = await redisServer(t)
  const drainTimeout = 1000
  const edge = await build(t, { redis: redis.url, routes: [{ path: '/ws', drainTimeout }, { path: '/public', anonymous: true, drainTimeout }] })
  const { client } = await connect(t, `${edge.ws}/public`)
  await client.subscribe('promotional')
  const { client: deaf } = await connect(t, `${edge.ws}/public`)
  ;(deaf.socket as unknown as { _socket: { pause (): void } })._socket.pause()
  await redis.stop()

  const started = Date.now()
  await edge.app.close()
  const elapsed = Date.now() - started
  t.ok(elapsed < drainTimeout + 1000, `closed in ${elapsed} ms`)
  t.equal(await client.closed, 1001)
  deaf.socket.terminate()
  t.same(failures, [])
})

t.test('a subscribe made while Redis is down is answered once it is back', async (t) => {
  const redis = await redisServer(t)
  const edge = await build(t, { redis: redis.url })
  const { client } = await connect(t, `${edge.ws}/public`)
  await redis.stop()
  client.send({ event: 'subscribe', streams: ['promotional'], id: 'during' })
  await redis.start()
  t.same((await client.next((f: Client['frames'][number]) => f.id === 'during', 10_000)).streams, ['promotional'])
  await healthyBus(edge.app)
  // ioredis reports ready before its re-SUBSCRIBE lands: publish once Redis holds the channel.
  const probe = new Redis(redis.url)
  t.teardown(() => probe.disconnect())
  await until('the channel to be subscribed again', async () =>
    (await probe.pubsub('NUMSUB', 'notify/p/promotional'))[1] === 1, 10_000)
  const res = await publish(edge.http, { stream: 'promotional', data: {} })
  t.equal((await client.event('message', 5000)).id, res.body.id)
})

async function healthyBus (app: FastifyInstance): Promise<void> {
  while (!app.notifyBus.health().healthy) await new Promise((resolve) => setTimeout(resolve, 50))
}
