import t from 'tap'
import { fileURLToPath } from 'node:url'
import { loadSync } from '@grpc/proto-loader'
import { credentials, loadPackageDefinition, Metadata, status, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import Fastify from 'fastify'
import { NOTIFY_PROTO_PATH, notify, notifyBus, notifyGrpc, notifyHistory } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, build, connectUser, registrationError } from './helpers.js'
import { redisServer } from './redis-server.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]
type Reply = { ids: string[], offline: string[] }
type Call = (request: Record<string, unknown>, metadata: Metadata, callback: (err: ServiceError | null, reply: Reply) => void) => void

// The client is generated from the shipped file, as a Go or Java service would generate theirs.
const PROTO = fileURLToPath(new URL('../proto/notify/v1/notify.proto', import.meta.url))
const definition = loadSync(PROTO, { keepCase: true, defaults: true })
const Notifications = ((loadPackageDefinition(definition).notify as GrpcObject).v1 as GrpcObject).Notifications as ServiceClientConstructor

const data = { orderId: '1', status: 'placed' }

async function grpcEdge (t: Test, extra: Record<string, unknown> = {}, edgeOptions: Record<string, unknown> = {}) {
  const edge = await build(t, { grpc: { apiKey: API_KEY, port: 0, ...extra }, ...edgeOptions })
  const client = new Notifications(`127.0.0.1:${edge.app.notifyGrpc.port}`, credentials.createInsecure()) as unknown as Client & { Publish: Call }
  t.teardown(() => client.close())
  const publish = (request: Record<string, unknown>, key: string | null = API_KEY): Promise<{ err: ServiceError | null, reply: Reply }> => {
    const metadata = new Metadata()
    if (key !== null) metadata.set('x-api-key', key)
    return new Promise((resolve) => client.Publish(request, metadata, (err, reply) => resolve({ err, reply })))
  }
  return { ...edge, publish }
}

t.test('Publish reaches sockets through app.notify and answers the ids, in the order of users', async (t) => {
  const edge = await grpcEdge(t)
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((user) => connectUser(t, edge, user)))
  for (const c of [alice, bob]) await c.subscribe('order', 'promotional')
  const one = await edge.publish({ stream: 'order', users: ['bob', 'alice'], data_json: JSON.stringify(data) })
  t.equal(one.err, null)
  t.equal(one.reply.ids.length, 2)
  t.same(one.reply.offline, [])
  t.equal((await bob.event('message')).id, one.reply.ids[0])
  t.same((await alice.event('message')).data, data)
  const away = await edge.publish({ stream: 'order', users: ['alice', 'carol'], data_json: JSON.stringify(data) })
  t.same(away.reply.offline, ['carol'], 'offline: the users no socket of which is subscribed (presence)')
  await alice.event('message')
  const pub = await edge.publish({ stream: 'promotional', data_json: '{"text":"hi"}' })
  t.equal(pub.reply.ids.length, 1)
  for (const c of [alice, bob]) t.equal((await c.event('message')).id, pub.reply.ids[0])
})

t.test('idempotency_key publishes once and answers the first ids', async (t) => {
  const edge = await grpcEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const request = { stream: 'order', users: ['alice'], data_json: JSON.stringify(data), idempotency_key: 'order-9-placed' }
  const [first, again] = [await edge.publish(request), await edge.publish(request)]
  t.same(again.reply, first.reply)
  await alice.event('message')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [])
})

t.test('errors are gRPC status codes with the FST_NOTIFY_ code in trailing metadata', async (t) => {
  const edge = await grpcEdge(t, { maxMessageBytes: 1024 })
  const cases: Array<[string, Record<string, unknown>, string | null, status, string | null]> = [
    ['no key', { stream: 'promotional', data_json: '{}' }, null, status.UNAUTHENTICATED, 'FST_NOTIFY_BAD_API_KEY'],
    ['a wrong key', { stream: 'promotional', data_json: '{}' }, 'wrong-key-0123456789', status.UNAUTHENTICATED, 'FST_NOTIFY_BAD_API_KEY'],
    ['an unknown stream', { stream: 'nope', data_json: '{}' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_UNKNOWN_STREAM'],
    ['no stream', { data_json: '{}' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_UNKNOWN_STREAM'],
    ['a private stream without users', { stream: 'order', data_json: '{}' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_USER_REQUIRED'],
    ['a public stream with users', { stream: 'promotional', users: ['a'], data_json: '{}' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_USER_NOT_ALLOWED'],
    ['no data', { stream: 'promotional' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_DATA_REQUIRED'],
    ['data that is not JSON', { stream: 'promotional', data_json: '{"a":' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_INVALID_JSON'],
    ['data failing the schema', { stream: 'order', users: ['a'], data_json: '{"orderId":"1"}' }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_INVALID_DATA'],
    ['an empty user', { stream: 'order', users: [''], data_json: JSON.stringify(data) }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_INVALID_USER'],
    ['a bad idempotency key', { stream: 'promotional', data_json: '{}', idempotency_key: 'k'.repeat(129) }, API_KEY, status.INVALID_ARGUMENT, 'FST_NOTIFY_BAD_IDEMPOTENCY_KEY'],
    ['a request over the limit', { stream: 'promotional', data_json: JSON.stringify({ text: 'x'.repeat(2000) }) }, API_KEY, status.RESOURCE_EXHAUSTED, 'FST_NOTIFY_PAYLOAD_TOO_LARGE']
  ]
  for (const [what, request, key, code, errorCode] of cases) {
    const { err } = await edge.publish(request, key)
    t.equal(err?.code, code, what)
    if (errorCode !== null) t.same(err?.metadata.get('x-error-code'), [errorCode], what)
  }
  t.equal(edge.app.notifyBus.topicCount(), 0)
})

t.test('a bus that cannot publish (Redis frozen) answers UNAVAILABLE, then works again', async (t) => {
  const redis = await redisServer(t)
  const edge = await grpcEdge(t, {}, { redis: redis.url, bus: { publishTimeout: 200 } })
  redis.pause()
  const { err } = await edge.publish({ stream: 'reward', users: ['alice'], data_json: '{}' })
  t.equal(err?.code, status.UNAVAILABLE)
  t.same(err?.metadata.get('x-error-code'), ['FST_NOTIFY_OUTCOME_UNKNOWN'], 'sent, not answered: its outcome is unknown')
  redis.resume()
  t.equal((await edge.publish({ stream: 'reward', users: ['alice'], data_json: '{}' })).err, null)
})

t.test('registers alone; app.close() shuts the server down', async (t) => {
  const app = Fastify()
  await app.register(notifyBus)
  await app.register(notifyHistory)
  await app.register(notify, { streams: STREAMS })
  await app.register(notifyGrpc, { apiKey: API_KEY, port: 0 })
  t.equal(app.notifyGrpc.port, null, 'not bound before ready')
  await app.ready()
  const port = app.notifyGrpc.port
  t.ok(port !== null && port > 0)
  t.match(NOTIFY_PROTO_PATH, /proto\/notify\/v1\/notify\.proto$/)
  await app.close()
  const client = new Notifications(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as Client & { Publish: Call }
  t.teardown(() => client.close())
  const { code } = await new Promise<ServiceError>((resolve) =>
    client.Publish({ stream: 'promotional', data_json: '{}' }, new Metadata(), (err) => resolve(err!)))
  t.equal(code, status.UNAVAILABLE, 'nothing listens any more')
})

t.test('grpc options are validated at registration', async (t) => {
  const bad = [{}, { apiKey: 'short' }, { apiKey: API_KEY, port: -1 }, { apiKey: API_KEY, port: 70000 }, { apiKey: API_KEY, host: '' },
    { apiKey: API_KEY, credentials: {} }, { apiKey: API_KEY, maxMessageBytes: 0 }, { apiKey: API_KEY, closeTimeout: 1.5 }]
  for (const grpc of bad) t.equal((await registrationError({ grpc }))?.code, 'FST_NOTIFY_INVALID_OPTION', JSON.stringify(grpc))
})
