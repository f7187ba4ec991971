import t, { type Test } from 'tap'
import { buildApp } from '../example-app/app.js'
import { loadConfig, type AppConfig } from '../example-app/config.js'
import { connect, publish, ticket, urls, type Edge } from './helpers.js'

const ENV = { NODE_ENV: 'test', JWT_SECRET: 'example-app-test-secret-long-enough-for-hs256', PUBLISH_API_KEY: 'example-app-test-key-0123', ORDER_STEP_MS: '20' }

async function start (t: Test, env: NodeJS.ProcessEnv = ENV): Promise<Edge & { config: AppConfig }> {
  const { config } = loadConfig(env)
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, config, ...urls(app) }
}

async function post (url: string, body: unknown): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

async function login (http: string, user: string, ttl?: number): Promise<string> {
  const res = await post(`${http}/auth/login`, { user, ttl })
  if (res.status !== 200) throw new Error(`login: ${res.status}`)
  return res.body.token
}

t.test('/auth/login signs a JWT for the user with the ttl asked for, within 1 to 86400 seconds', async (t) => {
  const edge = await start(t)
  const jwt = await login(edge.http, 'alice', 120)
  const claims = edge.app.jwt.verify<{ sub: string, iat: number, exp: number }>(jwt)
  t.equal(claims.sub, 'alice')
  t.equal(claims.exp - claims.iat, 120)
  const byDefault = edge.app.jwt.verify<{ iat: number, exp: number }>(await login(edge.http, 'alice'))
  t.equal(byDefault.exp - byDefault.iat, 3600, 'an hour by default')
  t.equal((await post(`${edge.http}/auth/login`, { user: 'alice', ttl: 86400 })).status, 200)

  for (const [what, body] of [
    ['ttl 0', { user: 'alice', ttl: 0 }],
    ['ttl over a day', { user: 'alice', ttl: 86401 }],
    ['a fractional ttl', { user: 'alice', ttl: 1.5 }],
    ['no user', { ttl: 60 }],
    ['an empty user', { user: '' }],
    ['a user over 256 characters', { user: 'u'.repeat(257) }]
  ] as const) {
    t.equal((await post(`${edge.http}/auth/login`, body)).status, 400, what)
  }
  const stripped = await post(`${edge.http}/auth/login`, { user: 'alice', admin: true, sub: 'root' })
  const strippedClaims = edge.app.jwt.decode<Record<string, unknown>>(stripped.body.token)!
  t.same([strippedClaims.sub, 'admin' in strippedClaims], ['alice', false], 'no claim can be slipped in')
})

t.test('an order\'s placed, paid and shipped reach its user\'s socket in order, and no one else\'s', async (t) => {
  const edge = await start(t)
  const [alice, bob] = await Promise.all(['alice', 'bob'].map(async (user) => {
    const { client } = await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, await login(edge.http, user))}`)
    await client.subscribe('order', 'promotional')
    return client
  }))
  const placed = await post(`${edge.http}/orders`, { user: 'alice' })
  t.equal(placed.status, 202)
  const statuses = []
  for (let i = 0; i < 3; i++) {
    const message = await alice.event('message')
    t.equal(message.data.orderId, placed.body.orderId)
    statuses.push(message.data.status)
  }
  t.same(statuses, ['placed', 'paid', 'shipped'])
  await bob.request({ event: 'ping' }, 'pong')
  t.same(bob.messages(), [])
  t.equal((await post(`${edge.http}/orders`, {})).status, 400, 'an order needs a user')
})

/** GET /orders with `jwt` as Bearer. */
async function orders (http: string, jwt: string): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${http}/orders`, { headers: { authorization: `Bearer ${jwt}` } })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

t.test('GET /orders answers the user\'s orders as they stand, for a page to refetch after a gap', async (t) => {
  const edge = await start(t, { ...ENV, ORDER_STEP_MS: '60000' })
  const jwt = await login(edge.http, 'alice')
  t.same((await orders(edge.http, jwt)).body, { orders: [] })
  const placed: string[] = []
  for (let n = 0; n < 52; n++) placed.push((await post(`${edge.http}/orders`, { user: 'alice' })).body.orderId)
  const { body } = await orders(edge.http, jwt)
  t.same(body.orders, placed.slice(2).map((orderId) => ({ orderId, status: 'placed' })), 'the latest 50')
  t.same((await orders(edge.http, await login(edge.http, 'bob'))).body, { orders: [] }, 'only the caller\'s')
  t.equal((await orders(edge.http, 'not-a-jwt')).status, 401)
  t.equal((await fetch(`${edge.http}/orders`)).status, 401)
})

t.test('/demo/promotion publishes on the public stream, seen on /public', async (t) => {
  const edge = await start(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  await client.subscribe('promotional')
  const res = await post(`${edge.http}/demo/promotion`, {})
  t.equal(res.status, 202)
  t.match(await client.event('message'), { stream: 'promotional', id: res.body.id, data: { text: /Promotion #1/ } })
})

t.test('POST /notifications takes the configured key', async (t) => {
  const edge = await start(t)
  t.equal((await publish(edge.http, { stream: 'system', data: { text: 'hi' } }, ENV.PUBLISH_API_KEY)).status, 202)
  t.equal((await publish(edge.http, { stream: 'system', data: { text: 'hi' } }, 'notify-edge-development-api-key')).status, 401)
})

t.test('/health answers ok and GET / serves the demo page and its script', async (t) => {
  const edge = await start(t)
  t.same(await (await fetch(`${edge.http}/health`)).json(), { status: 'ok' })
  const page = await fetch(`${edge.http}/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /text\/html/)
  t.match(await page.text(), /notify-edge demo/)
  const script = await fetch(`${edge.http}/app.js`)
  t.equal(script.status, 200)
  t.match(await script.text(), /\/ws\/ticket/)
})

t.test('closing the app with orders under way clears their timers', async (t) => {
  const { config } = loadConfig({ ...ENV, ORDER_STEP_MS: '60000' })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  t.equal((await post(`${urls(app).http}/orders`, { user: 'alice' })).status, 202)
  t.equal(timers(), before + 2, 'paid and shipped are scheduled')
  await app.close()
  t.ok(timers() <= before, 'and cleared on close')
})

t.test('loadConfig reads the environment of SPEC section 7', async (t) => {
  const { config, warnings } = loadConfig({})
  t.match(config, { port: 3000, host: '127.0.0.1', redisUrl: undefined, ticketTtl: 30, allowedOrigins: undefined, logLevel: 'info', orderStepMs: 1000 })
  t.equal(warnings.length, 2, 'development secret and key, each with a warning')
  t.match(warnings.join('\n'), /JWT_SECRET[\s\S]*PUBLISH_API_KEY/)

  const set = loadConfig({
    ...ENV,
    PORT: '8080',
    HOST: '0.0.0.0',
    REDIS_URL: 'redis://127.0.0.1:6379',
    TICKET_TTL: '10',
    ALLOWED_ORIGINS: ' https://a.example , https://b.example,,',
    LOG_LEVEL: 'warn'
  })
  t.same(set.warnings, [])
  t.match(set.config, {
    port: 8080,
    host: '0.0.0.0',
    redisUrl: 'redis://127.0.0.1:6379',
    jwtSecret: ENV.JWT_SECRET,
    publishApiKey: ENV.PUBLISH_API_KEY,
    ticketTtl: 10,
    allowedOrigins: ['https://a.example', 'https://b.example'],
    logLevel: 'warn',
    orderStepMs: 20
  })
  t.equal(loadConfig({ ALLOWED_ORIGINS: ' , ' }).config.allowedOrigins, undefined)
})

t.test('loadConfig refuses production without secrets and out-of-range numbers', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production', PUBLISH_API_KEY: ENV.PUBLISH_API_KEY }), /JWT_SECRET is required/)
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: ENV.JWT_SECRET }), /PUBLISH_API_KEY is required/)
  t.same(loadConfig({ ...ENV, NODE_ENV: 'production' }).warnings, [])
  for (const [name, value] of [['PORT', '70000'], ['PORT', 'http'], ['TICKET_TTL', '0'], ['TICKET_TTL', '1.5'], ['ORDER_STEP_MS', '-1']]) {
    t.throws(() => loadConfig({ [name]: value }), new RegExp(`${name} must be an integer`), `${name}=${value}`)
  }
})

t.test('the app refuses a JWT secret that is too short for HS256, naming the variable', async (t) => {
  t.throws(() => loadConfig({ ...ENV, JWT_SECRET: 'short' }), { name: 'SettingError', message: 'JWT_SECRET must be at least 32 characters, got 5' })
  t.throws(() => loadConfig({ ...ENV, PUBLISH_API_KEY: 'short' }), { name: 'SettingError', message: 'PUBLISH_API_KEY must be at least 16 characters, got 5' })
  // The plugin itself still refuses it, for an app that does not read the environment this way.
  const { config } = loadConfig(ENV)
  await t.rejects(buildApp({ ...config, jwtSecret: 'short' }, false), { code: 'FST_NOTIFY_INVALID_OPTION' })
})
