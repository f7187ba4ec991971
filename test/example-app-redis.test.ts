import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { redisServer, until } from './redis-server.js'

async function app (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>): Promise<Awaited<ReturnType<typeof buildApp>>> {
  const built = await buildApp(loadConfig(env).config, false)
  t.teardown(() => built.close())
  return built
}

t.test('without REDIS_URL the example app runs in-process', async (t) => {
  const example = await app(t, {})
  t.equal(example.notifyBus.health().backend, 'memory')
  const res = await example.inject('/health')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('with REDIS_URL the example app runs on Redis and /health follows it', async (t) => {
  const server = await redisServer(t)
  const example = await app(t, { REDIS_URL: server.url })
  t.equal(example.notifyBus.health().backend, 'redis')
  let res = await example.inject('/health')
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok', redis: { bus: { pub: 'ready', sub: 'ready' }, tickets: 'ready' } })

  await server.stop()
  await until('the app to notice', () => !example.notifyBus.health().healthy)
  res = await example.inject('/health')
  t.equal(res.statusCode, 503)
  t.match(res.json(), { status: 'degraded' })

  await server.start()
  await until('the app to reconnect', () => example.notifyBus.health().healthy && example.redis.status === 'ready', 10_000)
  res = await example.inject('/health')
  t.equal(res.statusCode, 200)
})

t.test('with REDIS_URL, GET /orders answers the orders any instance took', async (t) => {
  const server = await redisServer(t)
  const env = { REDIS_URL: server.url, ORDER_STEP_MS: '10' }
  const [a, b] = [await app(t, env), await app(t, env)]
  const jwt = a.jwt.sign({ sub: 'alice' })
  const placed = await a.inject({ method: 'POST', url: '/orders', payload: { user: 'alice' } })
  const { orderId } = placed.json()
  await until('the order to ship', async () =>
    (await b.inject({ url: '/orders', headers: { authorization: `Bearer ${jwt}` } })).json().orders[0]?.status === 'shipped')
  t.same((await b.inject({ url: '/orders', headers: { authorization: `Bearer ${jwt}` } })).json(), { orders: [{ orderId, status: 'shipped' }] })
})
