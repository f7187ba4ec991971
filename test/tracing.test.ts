import t from 'tap'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { loadSync } from '@grpc/proto-loader'
import { credentials, loadPackageDefinition, Metadata, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { STREAMS } from '../example-app/app.js'
import { SpanKind, contextFrom, continueTrace, inSpan, traceparentOf, traceLogFields } from '../plugins/tracing.js'
import { SpanStatusCode, context, trace } from '@opentelemetry/api'
import { API_KEY, build, connect, connectUser, publish, token, type Client as Socket, type Edge } from './helpers.js'
import { AMQP_URL, amqpNames, producer } from './rabbitmq.js'
import { until } from './redis-server.js'
import { logCapture } from './log-capture.js'
import { decodePacket, encodeBusPacket, encodePacket, readBusPacket } from '../plugins/bus/packet.js'
import { notifyEdgeLoggerOptions } from '../plugins/index.js'
import { parentOf, spans, traceSpans } from './tracing-sdk.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]
type Call = (request: Record<string, unknown>, metadata: Metadata, callback: (err: ServiceError | null, reply: unknown) => void) => void

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const PROTO = fileURLToPath(new URL('../proto/notify/v1/notify.proto', import.meta.url))
const Notifications = ((loadPackageDefinition(loadSync(PROTO, { keepCase: true, defaults: true })).notify as GrpcObject).v1 as GrpcObject).Notifications as ServiceClientConstructor
const data = { orderId: '1', status: 'placed' }
const STREAMS_PLUS = [...STREAMS, { name: 'ticker', kind: 'public' as const }]

function newTraceparent (): { traceId: string, spanId: string, header: string } {
  const traceId = randomBytes(16).toString('hex')
  const spanId = randomBytes(8).toString('hex')
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` }
}

/** Two edges on the shared Redis under a prefix of this test's own, tracing on. */
async function twoEdges (t: Test, extra: Record<string, unknown> = {}): Promise<[Edge, Edge]> {
  const topicPrefix = `tr${randomBytes(4).toString('hex')}`
  return await Promise.all([0, 1].map(() => build(t, { redis: REDIS, topicPrefix, tracing: true, streams: STREAMS_PLUS, ...extra }))) as [Edge, Edge]
}

/** Waits for the trace to hold a publish span and `deliveries` delivery spans, and checks their parents. */
async function checkTrace (t: Test, traceId: string, producerSpan: string, deliveries: number, stream: string): Promise<void> {
  await until('the spans', () => {
    const all = traceSpans(traceId)
    return all.some((s) => s.name === 'notify publish') && all.filter((s) => s.name === 'notify deliver').length >= deliveries
  }, 5000)
  const all = traceSpans(traceId)
  const publishes = all.filter((s) => s.name === 'notify publish')
  t.equal(publishes.length, 1, 'one publish span')
  t.equal(parentOf(publishes[0]), producerSpan, "the publish span continues the producer's traceparent")
  t.equal(publishes[0].attributes['notify.stream'], stream)
  const delivered = all.filter((s) => s.name === 'notify deliver')
  t.equal(delivered.length, deliveries, 'one delivery span per instance with sockets')
  for (const span of delivered) {
    t.equal(parentOf(span), publishes[0].spanContext().spanId, 'parented on the publish span')
    t.equal(span.attributes['notify.stream'], stream)
    t.ok((span.attributes['notify.sockets'] as number) >= 1, 'with the number of sockets')
  }
}

async function subscribedOnBoth (t: Test, edges: Edge[], user: string, stream: string): Promise<Socket[]> {
  const sockets = [await connectUser(t, edges[0], user), await connectUser(t, edges[0], user), await connectUser(t, edges[1], user)]
  for (const socket of sockets) await socket.subscribe(stream)
  return sockets
}

t.test('an HTTP publish with a traceparent yields one trace: the publish span and a delivery span per instance', async (t) => {
  const edges = await twoEdges(t)
  for (const stream of ['order', 'ticker']) {
    const sockets = await subscribedOnBoth(t, edges, 'alice', stream)
    const producer = newTraceparent()
    const body = stream === 'order' ? { stream, user: 'alice', data } : { stream, data: { n: 1 } }
    const res = await fetch(`${edges[0].http}/notifications`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, traceparent: producer.header }, body: JSON.stringify(body)
    })
    t.equal(res.status, 202)
    for (const socket of sockets) await socket.event('message')
    await checkTrace(t, producer.traceId, producer.spanId, 2, stream)
    const deliveries = traceSpans(producer.traceId).filter((s) => s.name === 'notify deliver')
    t.same(deliveries.map((s) => s.attributes['notify.sockets']).sort(), [1, 2], 'sockets written on each instance')
  }
})

t.test('a publish without a traceparent starts a trace; an in-process publish continues the active span', async (t) => {
  const edges = await twoEdges(t)
  const sockets = await subscribedOnBoth(t, edges, 'bob', 'order')
  spans.reset()
  t.equal((await publish(edges[1].http, { stream: 'order', user: 'bob', data })).status, 202)
  for (const socket of sockets) await socket.event('message')
  await until('a root publish span', () => spans.getFinishedSpans().some((s) => s.name === 'notify publish'), 5000)
  const root = spans.getFinishedSpans().find((s) => s.name === 'notify publish')!
  t.equal(parentOf(root), '', 'a new trace')
  await checkTrace(t, root.spanContext().traceId, '', 2, 'order')

  const producer = newTraceparent()
  await context.with(contextFrom(producer.header), () => edges[0].app.notify.publish({ stream: 'order', user: 'bob', data }))
  for (const socket of sockets) await socket.event('message')
  await checkTrace(t, producer.traceId, producer.spanId, 2, 'order')
})

t.test('gRPC metadata traceparent continues the trace', async (t) => {
  const edges = await twoEdges(t, { grpc: { apiKey: API_KEY, port: 0 } })
  const sockets = await subscribedOnBoth(t, edges, 'carol', 'order')
  const client = new Notifications(`127.0.0.1:${edges[0].app.notifyGrpc.port}`, credentials.createInsecure()) as unknown as Client & { Publish: Call }
  t.teardown(() => client.close())
  const producer = newTraceparent()
  const metadata = new Metadata()
  metadata.set('x-api-key', API_KEY)
  metadata.set('traceparent', producer.header)
  const err = await new Promise((resolve) => client.Publish({ stream: 'order', users: ['carol'], data_json: JSON.stringify(data) }, metadata, (err) => resolve(err)))
  t.equal(err, null)
  for (const socket of sockets) await socket.event('message')
  await checkTrace(t, producer.traceId, producer.spanId, 2, 'order')
})

t.test('an AMQP message header traceparent continues the trace', async (t) => {
  const names = amqpNames(t)
  const edges = await twoEdges(t, { amqp: { url: AMQP_URL, ...names } })
  await until('the consumer', () => edges[0].app.notifyAmqp.health().state === 'consuming', 10_000)
  const sockets = await subscribedOnBoth(t, edges, 'dave', 'order')
  const producer = newTraceparent()
  await producer_(t, names.exchange).send('private.dave.order', data, { headers: { traceparent: producer.header } })
  for (const socket of sockets) await socket.event('message')
  await checkTrace(t, producer.traceId, producer.spanId, 2, 'order')
})
const producer_ = producer

t.test('log lines written inside a traced span carry its trace id (notifyEdgeLoggerOptions)', async (t) => {
  const logs = logCapture()
  const edge = await build(t, { tracing: true }, { logger: { level: 'info', stream: logs.stream, ...notifyEdgeLoggerOptions() } })
  const producer = newTraceparent()
  context.with(contextFrom(producer.header), () => edge.app.log.info('inside a traced publish'))
  edge.app.log.info('outside')
  const inside = logs.lines.find((l) => l.msg === 'inside a traced publish')
  t.match(inside, { trace_id: producer.traceId, span_id: producer.spanId, trace_flags: '01' })
  t.notOk('trace_id' in logs.lines.find((l) => l.msg === 'outside')!, 'no trace fields outside a span')
  t.same(traceLogFields(), {})
})

t.test('the helpers: traceparent parsing and continuing', async (t) => {
  for (const bad of [undefined, 42, 'nonsense', `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`, `00-${'1'.repeat(32)}-${'0'.repeat(16)}-01`, `01-${'1'.repeat(32)}-${'1'.repeat(16)}-01`]) {
    t.equal(trace.getSpanContext(contextFrom(bad)), undefined, `refuses ${String(bad)}`)
  }
  const producer = newTraceparent()
  t.equal(continueTrace(producer.header, () => trace.getActiveSpan()?.spanContext().spanId), producer.spanId)
  t.equal(continueTrace(undefined, () => trace.getActiveSpan()), undefined)
  const span = trace.getTracer('t').startSpan('s')
  t.match(traceparentOf(span), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
  span.end()
})

t.test('the bus packet carries trace as an optional field, read by the fast reader and the general one', async (t) => {
  const trace = newTraceparent().header
  for (const message of [{ topic: 'n/p/a', id: '1-0', frame: '{}', trace }, { topic: 'n/u/a/b', id: '1-0', frame: '{}', prev: '', trace }, { topic: 'n/p/a', id: '1-0', frame: '{}' }]) {
    const packet = encodeBusPacket('pid', message)
    t.same(readBusPacket(packet), message)
    t.same(decodePacket(packet), { id: 'pid', msg: message })
  }
  const swapped = encodePacket({ id: 'pid', msg: { topic: 'n/p/a', id: '1-0', frame: '{}', trace, prev: '' } })
  t.equal(readBusPacket(swapped), null, 'another field order goes to the general reader')
  t.equal(readBusPacket(encodePacket({ id: 'pid', msg: { topic: 'n/p/a', id: '1-0', frame: '{}', trace: 5 } })), null, 'a trace that is no string')
  t.equal(readBusPacket(encodePacket({ id: 'pid', msg: { topic: 'n/p/a', id: '1-0', frame: '{}', prev: 5 } })), null, 'a prev that is no string')
})

t.test('handshakes, ticket redemption, resume replays and live repairs are spans', async (t) => {
  const [edge] = await twoEdges(t)
  spans.reset()
  const alice = await connectUser(t, edge, 'alice')
  await edge.app.notify.publish({ stream: 'order', user: 'alice', data })
  await alice.subscribe({ stream: 'order', since: '0-0' })
  const names = (): string[] => spans.getFinishedSpans().map((s) => s.name)
  await until('handshake and replay spans', () => names().includes('notify handshake ticket redeem') && names().includes('notify resume replay'), 5000)
  const replay = spans.getFinishedSpans().find((s) => s.name === 'notify resume replay')!
  t.equal(replay.attributes['notify.stream'], 'order')

  const topic = edge.app.notify.streams.get('order')!.topic('alice')
  await edge.app.notifyBus.publish({ topic, id: `${Date.now()}-9`, frame: '{"event":"message","stream":"order","id":"x","data":{}}', prev: 'not-the-last' })
  await until('a repair span', () => names().includes('notify repair'), 5000)
  t.equal(spans.getFinishedSpans().find((s) => s.name === 'notify repair')!.attributes['notify.stream'], 'order')

  const { client: byJwt } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'bob')}`)
  t.ok(byJwt)
  await until('a JWT handshake span', () => names().includes('notify handshake'), 5000)
})

t.test('a publish that fails ends its span with an error status; a span body that throws at once is recorded too', async (t) => {
  const edge = await build(t, { tracing: true })
  spans.reset()
  await t.rejects(edge.app.notify.publish({ stream: 'nope', data: {} } as never), { code: 'FST_NOTIFY_UNKNOWN_STREAM' })
  const failed = spans.getFinishedSpans().find((s) => s.name === 'notify publish')!
  t.equal(failed.status.code, SpanStatusCode.ERROR)
  t.equal(failed.events[0]?.name, 'exception')

  const tracer = trace.getTracer('test')
  t.throws(() => inSpan(tracer, 'sync', SpanKind.INTERNAL, {}, () => { throw new Error('at once') }), /at once/)
  t.equal(spans.getFinishedSpans().find((s) => s.name === 'sync')?.status.code, SpanStatusCode.ERROR)
})

t.test('in memory (history kept by the edge, published after): the trace rides on the bus message too; tracing off puts none there', async (t) => {
  const traced = await build(t, { tracing: true })
  const alice = await connectUser(t, traced, 'alice')
  await alice.subscribe('order')
  const producer = newTraceparent()
  const seen: Array<string | undefined> = []
  const topic = traced.app.notify.streams.get('order')!.topic('alice')
  const listener = (message: { trace?: string }): void => { seen.push(message.trace) }
  await traced.app.notifyBus.subscribe(topic, listener)
  t.teardown(() => traced.app.notifyBus.unsubscribe(topic, listener))
  await context.with(contextFrom(producer.header), () => traced.app.notify.publish({ stream: 'order', user: 'alice', data }))
  await alice.event('message')
  await checkTrace(t, producer.traceId, producer.spanId, 1, 'order')
  t.match(seen[0], new RegExp(`^00-${producer.traceId}-[0-9a-f]{16}-01$`))

  const plain = await build(t)
  const bob = await connectUser(t, plain, 'bob')
  await bob.subscribe('order')
  const untraced: Array<string | undefined> = []
  const bobTopic = plain.app.notify.streams.get('order')!.topic('bob')
  const record = (message: { trace?: string }): void => { untraced.push(message.trace) }
  await plain.app.notifyBus.subscribe(bobTopic, record)
  t.teardown(() => plain.app.notifyBus.unsubscribe(bobTopic, record))
  const other = newTraceparent()
  const res = await fetch(`${plain.http}/notifications`, {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, traceparent: other.header }, body: JSON.stringify({ stream: 'order', user: 'bob', data })
  })
  t.equal(res.status, 202)
  await bob.event('message')
  t.same(untraced, [undefined], 'no trace on the bus message')
  t.same(traceSpans(other.traceId), [], 'no span')
  t.equal(plain.app.notifyTracer, null)
})
