import t from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { notifyEdge, notifyPublisher, type NotifyPublisherOptions, type PublishInput } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, build } from './helpers.js'
import { redisServer, sharedRedis } from './redis-server.js'
import { cleanUpKeys, publisherApp, silentServer } from './split-helpers.js'

async function registrationError (opts: Record<string, unknown>): Promise<{ code?: string } | null> {
  const app = Fastify({ logger: false })
  try {
    await app.register(notifyPublisher, { streams: STREAMS, ...opts } as NotifyPublisherOptions)
    await app.ready()
    return null
  } catch (err) {
    return err as { code?: string }
  } finally {
    await app.close()
  }
}

t.test('refuses bad options with coded errors', async (t) => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['no transport', {}],
    ['two transports', { redis: 'redis://127.0.0.1:1', http: { url: 'http://127.0.0.1:1', apiKey: API_KEY } }],
    ['http without an object', { http: 'http://127.0.0.1:1' }],
    ['http with a relative url', { http: { url: '/edge', apiKey: API_KEY } }],
    ['http with another protocol', { http: { url: 'ftp://edge', apiKey: API_KEY } }],
    ['http with a short key', { http: { url: 'http://127.0.0.1:1', apiKey: 'short' } }],
    ['a bad timeout', { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY }, timeout: 0 }],
    ['a bad topic prefix', { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY }, topicPrefix: 'a/b' }],
    ['bad streams', { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY }, streams: [] }],
    ['http with a relative presencePath', { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY, presencePath: 'ftp://x' } }],
    ['gRPC and AMQP', { grpc: { address: '127.0.0.1:1', apiKey: API_KEY }, amqp: { url: 'amqp://127.0.0.1:1' } }],
    ['all four', { redis: 'redis://127.0.0.1:1', http: { url: 'http://127.0.0.1:1', apiKey: API_KEY }, grpc: { address: '127.0.0.1:1', apiKey: API_KEY }, amqp: { url: 'amqp://127.0.0.1:1' } }],
    ['grpc without an object', { grpc: '127.0.0.1:1' }],
    ['grpc without an address', { grpc: { address: '', apiKey: API_KEY } }],
    ['grpc with a short key', { grpc: { address: '127.0.0.1:1', apiKey: 'short' } }],
    ['grpc with other credentials', { grpc: { address: '127.0.0.1:1', apiKey: API_KEY, credentials: { secure: true } } }],
    ['amqp without an object', { amqp: 'amqp://127.0.0.1:1' }],
    ['amqp with a bad url', { amqp: { url: 5 } }],
    ['amqp with a bad exchange', { amqp: { url: 'amqp://127.0.0.1:1', exchange: 'a b' } }]
  ]
  for (const [what, opts] of cases) t.equal((await registrationError(opts))?.code, 'FST_NOTIFY_INVALID_OPTION', what)
})

t.test('refuses to register beside an edge: one app.notify per app', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS })
  await t.rejects(async () => { await app.register(notifyPublisher, { streams: STREAMS, http: { url: 'http://127.0.0.1:1', apiKey: API_KEY } }) }, { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('checks a publish exactly as the edge does, before anything travels', async (t) => {
  const edge = await build(t)
  const { app } = await publisherApp(t, { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY } })
  const bad: unknown[] = [
    null, [], { stream: 'order', user: 'a', data: {}, extra: 1 }, { stream: 'nope', data: {} },
    { stream: 'order', data: { orderId: 1, status: 'x' } }, { stream: 'promotional', user: 'a', data: {} },
    { stream: 'order', users: [], data: {} }, { stream: 'order', user: '', data: {} }, { stream: 'order', user: 'a' },
    { stream: 'order', user: 'a', data: {} }, { stream: 'reward', user: 'a', data: 1n }
  ]
  for (const input of bad) {
    const expected = await edge.app.notify.publish(input as PublishInput).then(() => null, (err: { code: string }) => err.code)
    t.ok(expected, `the edge refuses ${String(JSON.stringify(input, (_k, v) => typeof v === 'bigint' ? 'bigint' : v))}`)
    await t.rejects(app.notify.publish(input as PublishInput), { code: expected, statusCode: 400 })
  }
  t.same([...app.notify.streams.keys()], [...edge.app.notify.streams.keys()])
})

t.test('over HTTP, the edge\'s answers map onto the same coded errors', async (t) => {
  const edge = await build(t, { streams: STREAMS.filter((s) => s.name !== 'reward') })
  const good = await publisherApp(t, { http: { url: edge.http, apiKey: API_KEY } })
  await t.rejects(good.app.notify.publish({ stream: 'reward', user: 'a', data: {} }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH', statusCode: 500 },
    'a stream the edge does not declare')
  t.match(await good.app.notify.publish({ stream: 'order', users: ['a', 'b'], data: { orderId: '1', status: 'placed' } }), { ids: [String, String] })

  const wrongKey = await publisherApp(t, { http: { url: edge.http, apiKey: 'another-key-0123456789' } })
  await t.rejects(wrongKey.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_EDGE_REFUSED' })

  const notAnEdge = Fastify({ logger: false })
  t.teardown(() => notAnEdge.close())
  notAnEdge.post('/notifications', async (_request, reply) => reply.code(202).send('not json'))
  notAnEdge.post('/broken', async (_request, reply) => reply.code(502).send({ message: 'bad gateway' }))
  await notAnEdge.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(notAnEdge.server.address() as { port: number }).port}`
  const odd = await publisherApp(t, { http: { url, apiKey: API_KEY } })
  await t.rejects(odd.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' }, '202 without ids')
  const broken = await publisherApp(t, { http: { url, apiKey: API_KEY, path: '/broken' } })
  await t.rejects(broken.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 }, 'a 5xx')
})

t.test('an unreachable or frozen edge answers 503, never hangs', async (t) => {
  const closed = await publisherApp(t, { http: { url: 'http://127.0.0.1:1', apiKey: API_KEY } })
  await t.rejects(closed.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 })
  const port = await silentServer(t)
  const frozen = await publisherApp(t, { http: { url: `http://127.0.0.1:${port}`, apiKey: API_KEY }, timeout: 300 })
  await t.rejects(frozen.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 })
})

t.test('over Redis, a publisher whose streams differ from the edge\'s fails at start-up', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  await build(t, { redis: url, topicPrefix: prefix })
  const extra = [...STREAMS, { name: 'extra', kind: 'public' as const }]
  t.match(await registrationError({ redis: url, topicPrefix: prefix, streams: extra }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH' }, 'an unknown stream')
  const otherKind = STREAMS.map((s) => s.name === 'reward' ? { ...s, kind: 'public' as const } : s)
  t.match(await registrationError({ redis: url, topicPrefix: prefix, streams: otherKind }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH' }, 'another kind')
  const noHistory = STREAMS.map((s) => ({ ...s, history: undefined }))
  t.match(await registrationError({ redis: url, topicPrefix: prefix, streams: noHistory }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH' }, 'no history')
  const otherSchema = STREAMS.map((s) => s.name === 'order' ? { ...s, schema: { type: 'object' } } : s)
  t.match(await registrationError({ redis: url, topicPrefix: prefix, streams: otherSchema }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH' }, 'another schema')
  t.equal(await registrationError({ redis: url, topicPrefix: prefix, streams: STREAMS.slice(0, 2) }), null, 'a subset is fine')
})

t.test('over Redis, a publisher that starts before any edge (or with a prefix no edge uses) checks at its publishes', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  const extra = [...STREAMS, { name: 'extra', kind: 'public' as const }]
  const { app } = await publisherApp(t, { redis: url, topicPrefix: prefix, streams: extra })
  await t.rejects(app.notify.publish({ stream: 'extra', data: 1 }), { code: 'FST_NOTIFY_UNKNOWN_PREFIX', statusCode: 503 }, 'no edge under this prefix: nothing would read it')
  await build(t, { redis: url, topicPrefix: prefix })
  await t.rejects(app.notify.publish({ stream: 'extra', data: 1 }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH' })
})

t.test('over Redis, a lost or frozen Redis answers 503 and the publisher recovers', async (t) => {
  const server = await redisServer(t)
  const edge = await build(t, { redis: server.url })
  const { app } = await publisherApp(t, { redis: server.url, timeout: 300 })
  t.match(await app.notify.publish({ stream: 'promotional', data: 1 }), { id: String })
  server.pause()
  await t.rejects(app.notify.publish({ stream: 'promotional', data: 2 }), { code: 'FST_NOTIFY_OUTCOME_UNKNOWN', statusCode: 503 }, 'frozen: sent, not answered')
  server.resume()
  await server.stop()
  // Sent before the client saw the connection close, the append is unanswered rather than refused.
  await t.rejects(app.notify.publish({ stream: 'promotional', data: 3 }), { code: /^FST_NOTIFY_(BUS_UNAVAILABLE|OUTCOME_UNKNOWN)$/, statusCode: 503 }, 'down')
  // Whatever ioredis throws by itself while the connection is gone comes out as the coded 503s.
  await t.rejects(app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: '1', status: 'placed' } }), { code: /^FST_NOTIFY_(BUS_UNAVAILABLE|OUTCOME_UNKNOWN)$/, statusCode: 503 }, 'down, with history')
  await t.rejects(app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_UNAVAILABLE', statusCode: 503 }, 'presence, down')
  await server.start()
  await edge.app.ready()
  const publishes = async (): Promise<boolean> => app.notify.publish({ stream: 'system', data: 4 }).then(() => true, () => false)
  while (!await publishes()) await new Promise((resolve) => setTimeout(resolve, 50))
  t.pass('publishes again once Redis is back')
})

t.test('over Redis, a publisher that cannot reach Redis still starts, answers 503, and closes', async (t) => {
  const { app } = await publisherApp(t, { redis: 'redis://127.0.0.1:1', readyTimeout: 100 })
  await t.rejects(app.notify.publish({ stream: 'promotional', data: 1 }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 })
  await app.close()
})

t.test('the publisher closes the connection it opened, never a client it was given', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  await build(t, { redis: url, topicPrefix: prefix })
  const connectionName = `${prefix}-own`
  const own = await publisherApp(t, { redis: { url, connectionName }, topicPrefix: prefix })
  const given = new Redis(url)
  t.teardown(() => given.quit())
  const borrowed = await publisherApp(t, { redis: { client: given }, topicPrefix: prefix })
  await borrowed.app.notify.publish({ stream: 'system', data: 1 })
  await borrowed.app.close()
  t.equal(given.status, 'ready')
  const named = async (): Promise<boolean> => (await given.client('LIST') as string).includes(`name=${connectionName} `)
  t.ok(await named(), 'the publisher\'s own connection is open')
  await own.app.close()
  t.notOk(await named(), 'and closed with the app')
})
