import t from 'tap'
import { fileURLToPath } from 'node:url'
import { loadSync } from '@grpc/proto-loader'
import { credentials, loadPackageDefinition, Metadata, status, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { JSON_MAX_DEPTH, checkJsonValue, parseJsonPayload } from '../plugins/json-payload.js'
import { API_KEY, build, connect, connectUser } from './helpers.js'
import { AMQP_URL, amqpNames, producer } from './rabbitmq.js'
import { logCapture } from './log-capture.js'
import { until } from './redis-server.js'

// One table of hostile payloads, sent as a publish's data through every way in: the HTTP publish
// API, gRPC and AMQP (raw bytes, and `application/json`, which rabbitmq-client parses before us).
// Each is refused with the same code, and nothing of them reaches a subscriber.

type Call = (request: Record<string, unknown>, metadata: Metadata, callback: (err: ServiceError | null, reply: unknown) => void) => void

const PROTO = fileURLToPath(new URL('../proto/notify/v1/notify.proto', import.meta.url))
const Notifications = ((loadPackageDefinition(loadSync(PROTO, { keepCase: true, defaults: true })).notify as GrpcObject).v1 as GrpcObject).Notifications as ServiceClientConstructor

const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`
const INVALID = 'FST_NOTIFY_INVALID_JSON'
const TOO_LARGE = 'FST_NOTIFY_PAYLOAD_TOO_LARGE'

/** [what, data as JSON bytes, the code every ingress refuses it with] */
const HOSTILE: Array<[string, Buffer, string]> = [
  ['a __proto__ key', '{"__proto__":{"polluted":true}}', INVALID],
  ['a __proto__ key with escapes', '{"\\u005f_proto__":{"polluted":true}}', INVALID],
  ['a __proto__ key deep in an array', '{"list":[{"a":1},{"__proto__":{"isAdmin":true}}]}', INVALID],
  ['constructor.prototype', '{"constructor":{"prototype":{"polluted":true}}}', INVALID],
  ['constructor.prototype nested', '{"a":{"b":{"constructor":{"prototype":{"toString":1}}}}}', INVALID],
  [`nesting of ${JSON_MAX_DEPTH + 1}`, nested(JSON_MAX_DEPTH + 1), INVALID],
  ['nesting of 20,000', nested(20_000), INVALID],
  ['not JSON', '{"text":', INVALID],
  ['trailing garbage', '{"text":"hi"} x', INVALID],
  ['bytes that are not UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), INVALID],
  ['over 64 KiB', JSON.stringify({ text: 'x'.repeat(70_000) }), TOO_LARGE]
].map(([what, data, code]) => [what as string, Buffer.isBuffer(data) ? data : Buffer.from(data as string), code as string])

/** Data each ingress accepts, sent after the hostile rows: the subscriber sees these and only these. */
const FINE = [nested(JSON_MAX_DEPTH), '{"constructor":"a string is fine","prototype":1}', '{"text":"__proto__"}']

t.test('the shared parser: one rule, a coded error for each refusal', async (t) => {
  t.same(parseJsonPayload('{"a":[1,{"b":null}]}'), { a: [1, { b: null }] })
  t.same(parseJsonPayload(Buffer.from('\ufeff"hi"')), 'hi', 'a byte order mark is dropped')
  for (const [what, data, code] of HOSTILE) {
    t.throws(() => parseJsonPayload(data), { code }, what)
  }
  t.throws(() => parseJsonPayload('{"a":1}', { maxBytes: 6 }), { code: TOO_LARGE, statusCode: 413 })
  t.throws(() => parseJsonPayload('[[1]]', { maxDepth: 1 }), { code: INVALID, statusCode: 400 })
  // A value parsed elsewhere with a plain JSON.parse carries __proto__ as an own key.
  t.throws(() => checkJsonValue(JSON.parse('{"__proto__":{"x":1}}')), { code: INVALID })
  t.throws(() => checkJsonValue(JSON.parse(nested(50_000))), { code: INVALID }, 'checked for depth before it is measured')
  t.throws(() => checkJsonValue({ text: 'x'.repeat(100) }, { maxBytes: 50 }), { code: TOO_LARGE })
  t.same(checkJsonValue('hi'), 'hi')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'nothing was polluted')
})

t.test('HTTP, gRPC and AMQP refuse the same hostile payloads with the same code', async (t) => {
  const names = amqpNames(t)
  const logs = logCapture()
  const edge = await build(t, {
    metrics: { defaultMetrics: false },
    grpc: { apiKey: API_KEY, port: 0 },
    amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue }
  }, { logger: { level: 'warn', stream: logs.stream } })
  await until('the AMQP consumer', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('promotional')

  const http = async (data: Buffer, type = 'application/json'): Promise<{ status: number, code: string }> => {
    const body = Buffer.concat([Buffer.from('{"stream":"promotional","data":'), data, Buffer.from('}')])
    const res = await fetch(`${edge.http}/notifications`, { method: 'POST', headers: { 'content-type': type, 'x-api-key': API_KEY }, body })
    return { status: res.status, code: (await res.json() as { code: string }).code }
  }
  const client = new Notifications(`127.0.0.1:${edge.app.notifyGrpc.port}`, credentials.createInsecure()) as unknown as Client & { Publish: Call }
  t.teardown(() => client.close())
  const grpc = (data: Buffer): Promise<ServiceError | null> => {
    const metadata = new Metadata()
    metadata.set('x-api-key', API_KEY)
    return new Promise((resolve) => client.Publish({ stream: 'promotional', data_json: data.toString() }, metadata, (err) => resolve(err)))
  }
  const amqp = producer(t, names.exchange)

  t.same(await http(HOSTILE[0][1], 'application/json; charset=utf-8'), { status: 400, code: INVALID }, 'HTTP: with a charset parameter too')
  for (const [i, [what, data, code]] of HOSTILE.entries()) {
    const answer = await http(data)
    t.same(answer, { status: code === TOO_LARGE ? 413 : 400, code }, `HTTP: ${what}`)
    // A proto string holds only UTF-8; grpc-js refuses a message over its limit before we see it.
    if (what !== 'bytes that are not UTF-8') {
      const err = await grpc(data)
      if (code === TOO_LARGE) {
        t.equal(err?.code, status.RESOURCE_EXHAUSTED, `gRPC: ${what}`)
      } else {
        t.equal(err?.code, status.INVALID_ARGUMENT, `gRPC: ${what}`)
        t.same(err?.metadata.get('x-error-code'), [code], `gRPC: ${what}, coded`)
      }
    }
    await amqp.send('public.promotional', data, { messageId: `raw-${i}` })
    // rabbitmq-client decodes an `application/json` body lossily (U+FFFD) before we see it.
    if (what !== 'bytes that are not UTF-8') await amqp.send('public.promotional', data, { messageId: `json-${i}`, contentType: 'application/json' })
  }
  await until('every AMQP rejection', () => edge.app.notifyAmqp.stats.rejected === HOSTILE.length * 2 - 1)
  for (const [i, [what, , code]] of HOSTILE.entries()) {
    for (const way of what === 'bytes that are not UTF-8' ? ['raw'] : ['raw', 'json']) {
      const line = logs.lines.find((l) => l.messageId === `${way}-${i}`)
      t.ok(line?.msg.includes(code), `AMQP (${way}): ${what}`)
      t.equal(line?.reason, code === TOO_LARGE ? 'too_large' : 'not_json')
    }
  }

  for (const data of FINE.map((text) => Buffer.from(text))) {
    t.equal((await http(data)).status, 202)
    t.equal(await grpc(data), null)
    await amqp.send('public.promotional', data, { contentType: 'application/json' })
  }
  const received = []
  for (let i = 0; i < FINE.length * 3; i++) received.push((await alice.event('message')).data)
  // AMQP deliveries race the next HTTP and gRPC publishes: compare without order.
  const sorted = (values: unknown[]): string[] => values.map((value) => JSON.stringify(value)).sort()
  t.same(sorted(received), sorted(FINE.flatMap((text) => [text, text, text].map((x) => JSON.parse(x)))), 'only the fine data reached the subscriber')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'and nothing else')
  t.equal(edge.app.notifyAmqp.stats.acked, FINE.length)
})

t.test('a WebSocket frame (the way client publish comes in) is parsed under the same rule', async (t) => {
  const edge = await build(t, { routes: [{ path: '/public', anonymous: true, frameRate: false, maxBadFrames: 1000 }] })
  const { client } = await connect(t, `${edge.ws}/public`)
  // ws itself closes on bytes that are not UTF-8 (1007) and frames over maxPayload (1009).
  for (const [what, data] of HOSTILE.filter(([, , code]) => code === INVALID).filter(([what]) => what !== 'bytes that are not UTF-8')) {
    client.send(`{"event":"ping","id":"${what}","data":${data.toString()}}`)
    t.match(await client.event('error'), { code: 'BAD_REQUEST', message: /^Invalid JSON payload: / }, what)
  }
  t.match(await client.request({ event: 'subscribe', streams: ['promotional'], data: JSON.parse(nested(JSON_MAX_DEPTH)) }, 'subscribed'), { streams: ['promotional'] }, 'data nested as deep as allowed is fine')
  t.equal(client.closeCode, null, 'the connection lives')
})
