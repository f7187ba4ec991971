import t from 'tap'
import { loadSync } from '@grpc/proto-loader'
import { credentials, loadPackageDefinition, Metadata, status, type Client, type ClientDuplexStream, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js'
import { NOTIFY_PROTO_PATH } from '../plugins/index.js'
import { API_KEY, build, connectUser } from './helpers.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]
interface Reply { ref: number, ids: string[], offline: string[], status: number, error_code: string, error_message: string }
type Stream = ClientDuplexStream<Record<string, unknown>, Reply>

// The client is generated from the shipped file, as a Go or Java service would generate theirs.
const definition = loadSync(NOTIFY_PROTO_PATH, { keepCase: true, defaults: true })
const Notifications = ((loadPackageDefinition(definition).notify as GrpcObject).v1 as GrpcObject).Notifications as ServiceClientConstructor

const data = { orderId: '1', status: 'placed' }

/** A PublishStream call, its replies by ref, and how it ended (its status). */
function openStream (client: Client & { PublishStream: (md: Metadata) => Stream }, key: string = API_KEY) {
  const metadata = new Metadata()
  metadata.set('x-api-key', key)
  const call = client.PublishStream(metadata)
  const replies = new Map<number, Reply>()
  const waiters = new Map<number, (reply: Reply) => void>()
  call.on('data', (reply: Reply) => {
    replies.set(reply.ref, reply)
    waiters.get(reply.ref)?.(reply)
  })
  const ended = new Promise<{ code: number, errorCode: unknown }>((resolve) => {
    call.on('status', (s) => resolve({ code: s.code, errorCode: s.metadata.get('x-error-code')[0] }))
  })
  call.on('error', () => {})
  const send = (ref: number, request: Record<string, unknown>): Promise<Reply> => new Promise((resolve) => {
    waiters.set(ref, resolve)
    call.write({ ...request, ref })
  })
  return { call, replies, send, ended }
}

async function streamEdge (t: Test, grpc: Record<string, unknown> = {}) {
  const edge = await build(t, { grpc: { apiKey: API_KEY, port: 0, ...grpc } })
  const client = new Notifications(`127.0.0.1:${edge.app.notifyGrpc.port}`, credentials.createInsecure()) as unknown as Client & { PublishStream: (md: Metadata) => Stream }
  t.teardown(() => client.close())
  return { ...edge, client }
}

t.test('many publishes on one call: one reply each, distinct ids, each delivered once and in order', async (t) => {
  const edge = await streamEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const stream = openStream(edge.client)
  const count = 300
  const replies = await Promise.all(Array.from({ length: count }, (_, i) =>
    stream.send(i + 1, { stream: 'order', users: ['alice', 'bob'], data_json: JSON.stringify({ ...data, orderId: String(i) }) })))
  t.ok(replies.every((r, i) => r.ref === i + 1 && r.status === 0 && r.error_code === '' && r.ids.length === 2), 'every message answered, by its ref')
  t.same(replies[0].offline, ['bob'], 'offline as Publish answers it')
  const ids = replies.map((r) => r.ids[0])
  t.equal(new Set(ids).size, count, 'distinct ids')
  const got = []
  for (let i = 0; i < count; i++) got.push(await alice.event('message'))
  t.same(got.map((m) => m.id), ids, 'delivered in the order sent, with the answered ids')
  t.same(got.map((m) => (m.data as { orderId: string }).orderId), ids.map((_, i) => String(i)))
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'each once')
  stream.call.end()
  t.equal((await stream.ended).code, status.OK, 'the caller ending its side ends the call with OK')
})

t.test('a refused message gets its code in its reply; the call goes on', async (t) => {
  const edge = await streamEdge(t, { maxMessageBytes: 1024 })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('promotional')
  const stream = openStream(edge.client)
  const bad: Array<[string, Record<string, unknown>, status, string]> = [
    ['an unknown stream', { stream: 'nope', data_json: '{}' }, status.INVALID_ARGUMENT, 'FST_NOTIFY_UNKNOWN_STREAM'],
    ['data that is not JSON', { stream: 'promotional', data_json: '{"a":' }, status.INVALID_ARGUMENT, 'FST_NOTIFY_INVALID_JSON'],
    ['no data', { stream: 'promotional' }, status.INVALID_ARGUMENT, 'FST_NOTIFY_DATA_REQUIRED'],
    ['a message over the limit', { stream: 'promotional', data_json: JSON.stringify({ text: 'x'.repeat(2000) }) }, status.RESOURCE_EXHAUSTED, 'FST_NOTIFY_PAYLOAD_TOO_LARGE']
  ]
  let ref = 0
  for (const [what, request, code, errorCode] of bad) {
    const reply = await stream.send(++ref, request)
    t.match(reply, { status: code, error_code: errorCode, ids: [] }, what)
    t.ok(reply.error_message.length > 0, `${what}: a message says why`)
    const good = await stream.send(++ref, { stream: 'promotional', data_json: JSON.stringify({ after: ref }) })
    t.equal(good.status, 0, `${what}: the next message publishes`)
    const message = await alice.event('message')
    t.same([message.id, message.data], [good.ids[0], { after: ref }])
  }
  t.equal(edge.app.notifyBus.topicCount(), 1, 'nothing refused was published')
})

t.test('a keyed retry on the call answers the first ids and publishes once', async (t) => {
  const edge = await streamEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const stream = openStream(edge.client)
  const request = { stream: 'order', users: ['alice'], data_json: JSON.stringify(data), idempotency_key: 'stream-order-9' }
  const first = await stream.send(1, request)
  const again = await stream.send(2, request)
  t.equal(again.status, 0)
  t.same(again.ids, first.ids, 'the first publish\'s ids')
  await alice.event('message')
  const after = await stream.send(3, { stream: 'order', users: ['alice'], data_json: JSON.stringify(data) })
  t.equal((await alice.event('message')).id, after.ids[0], 'the call goes on; the retry was not delivered')
})

t.test('a call without the key ends UNAUTHENTICATED with its code', async (t) => {
  const edge = await streamEdge(t)
  const stream = openStream(edge.client, 'wrong-key-0123456789')
  stream.call.write({ stream: 'promotional', data_json: '{}', ref: 1 })
  t.same(await stream.ended, { code: status.UNAUTHENTICATED, errorCode: 'FST_NOTIFY_BAD_API_KEY' })
  t.equal(stream.replies.size, 0)
  t.equal(edge.app.notifyBus.topicCount(), 0)
})

t.test('app.close() ends open calls with OK after answering what they read, without waiting for closeTimeout', async (t) => {
  const edge = await streamEdge(t, { closeTimeout: 30_000 })
  const stream = openStream(edge.client)
  t.equal((await stream.send(1, { stream: 'promotional', data_json: '{}' })).status, 0)
  const idle = openStream(edge.client)
  t.equal((await idle.send(7, { stream: 'promotional', data_json: '{}' })).status, 0)
  const started = Date.now()
  await edge.app.close()
  t.ok(Date.now() - started < 5000, `closed in ${Date.now() - started} ms`)
  t.equal((await stream.ended).code, status.OK)
  t.equal((await idle.ended).code, status.OK)
})
