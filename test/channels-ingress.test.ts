// Publishing to channel keys through every way in (SPEC section 12): RabbitMQ routing keys
// `channel.<stream>.<key>`, gRPC `key`/`keys`, and the publisher plugin over each transport.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadSync } from '@grpc/proto-loader'
import { credentials, loadPackageDefinition, Metadata, status, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { parseRoutingKey, routingKey, type StreamDefinition } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, build, connectUser, type Client as WsClient, type Edge } from './helpers.js'
import { AMQP_URL, amqpNames, drainQueue, producer, queueDepth } from './rabbitmq.js'
import { until, sharedRedis } from './redis-server.js'
import { cleanUpKeys, publisherApp } from './split-helpers.js'

type Reply = { ids: string[], offline: string[] }
type Call = (request: Record<string, unknown>, metadata: Metadata, callback: (err: ServiceError | null, reply: Reply) => void) => void

const CHANNELS: StreamDefinition[] = [...STREAMS.filter((stream) => stream.kind !== 'channel'), { name: 'room', kind: 'channel', openAccess: true, history: { size: 50, ttl: 600 } }]
const PROTO = fileURLToPath(new URL('../proto/notify/v1/notify.proto', import.meta.url))
const Notifications = ((loadPackageDefinition(loadSync(PROTO, { keepCase: true, defaults: true })).notify as GrpcObject).v1 as GrpcObject)
  .Notifications as ServiceClientConstructor

type Test = Parameters<typeof connectUser>[0]

async function roomClient (t: Test, edge: Edge, ...keys: string[]): Promise<WsClient> {
  const client = await connectUser(t, edge, `u${randomBytes(4).toString('hex')}`)
  await client.subscribe(...keys.map((key) => `room:${key}`))
  return client
}

t.test('routing keys channel.<stream>.<key>: the key percent-encoded with . as %2E', async (t) => {
  t.equal(routingKey({ stream: 'room', key: 'a.b@c=d' }), 'channel.room.a%2Eb%40c%3Dd')
  t.same(parseRoutingKey('channel.room.a%2Eb%40c%3Dd'), { stream: 'room', key: 'a.b@c=d' })
  t.same(parseRoutingKey('channel.room.lobby'), { stream: 'room', key: 'lobby' })
  t.equal(parseRoutingKey('channel.room'), null)
  t.equal(parseRoutingKey('channel.room.a.b'), null, 'a raw dot makes four words')
  t.equal(parseRoutingKey('channel.room.%E0%A4%A'), null)
})

t.test('RabbitMQ: a channel routing key reaches that key only; a bad one is dead-lettered', async (t) => {
  const names = amqpNames(t)
  const edge = await build(t, {
    streams: CHANNELS,
    amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue, deadLetterExchange: names.deadLetterExchange, deadLetterQueue: names.deadLetterQueue }
  })
  await until('the consumer to consume', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const send = producer(t, names.exchange)
  const dotted = await roomClient(t, edge, 'a.b')
  const plain = await roomClient(t, edge, 'a')
  await send.send(routingKey({ stream: 'room', key: 'a.b' }), { text: 'dotted' }, { messageId: 'm1' })
  await send.send('channel.room.a', { text: 'plain' })
  t.match(await dotted.event('message'), { stream: 'room:a.b', data: { text: 'dotted' } })
  t.match(await plain.event('message'), { stream: 'room:a', data: { text: 'plain' } })
  const bad = ['channel.room.a%2Fb', 'channel.order.alice', 'channel.promotional.x', 'channel.nope.x']
  for (const key of bad) await send.send(key, { text: 'bad' })
  await until('the rejections', () => edge.app.notifyAmqp.stats.rejected === bad.length)
  await until('the dead letters', async () => await queueDepth(send.connection, names.deadLetterQueue) === bad.length)
  t.same((await drainQueue(send.connection, names.deadLetterQueue)).map((d) => d.routingKey).sort(), [...bad].sort())
  t.equal(edge.app.notifyAmqp.stats.acked, 2)
})

t.test('gRPC: key and keys (new fields) publish to channel keys; keys where they do not fit are INVALID_ARGUMENT', async (t) => {
  const edge = await build(t, { streams: CHANNELS, grpc: { apiKey: API_KEY, port: 0 } })
  const client = new Notifications(`127.0.0.1:${edge.app.notifyGrpc.port}`, credentials.createInsecure()) as unknown as Client & { Publish: Call }
  t.teardown(() => client.close())
  const call = (request: Record<string, unknown>): Promise<{ err: ServiceError | null, reply: Reply }> => {
    const metadata = new Metadata()
    metadata.set('x-api-key', API_KEY)
    return new Promise((resolve) => client.Publish(request, metadata, (err, reply) => resolve({ err, reply })))
  }
  const a = await roomClient(t, edge, 'a')
  const b = await roomClient(t, edge, 'b')
  const one = await call({ stream: 'room', key: 'a', data_json: '{"n":1}' })
  t.equal(one.err, null)
  t.equal((await a.event('message')).id, one.reply.ids[0])
  const both = await call({ stream: 'room', keys: ['b', 'a'], data_json: '{"n":2}' })
  t.equal(both.reply.ids.length, 2)
  t.equal((await b.event('message')).id, both.reply.ids[0])
  t.equal((await a.event('message')).id, both.reply.ids[1])
  for (const request of [
    { stream: 'room', data_json: '1' },
    { stream: 'room', key: 'a', keys: ['b'], data_json: '1' },
    { stream: 'room', key: 'a/b', data_json: '1' },
    { stream: 'promotional', key: 'a', data_json: '1' },
    { stream: 'room', key: 'a', users: ['alice'], data_json: '1' }
  ]) {
    const { err } = await call(request)
    t.equal(err?.code, status.INVALID_ARGUMENT, JSON.stringify(request))
  }
})

t.test('the publisher plugin publishes to keys over HTTP, gRPC, AMQP and Redis', async (t) => {
  const redis = await sharedRedis(t)
  cleanUpKeys(t, redis.url, redis.prefix)
  const names = amqpNames(t)
  const edge = await build(t, {
    streams: CHANNELS,
    topicPrefix: redis.prefix,
    redis: redis.url,
    grpc: { apiKey: API_KEY, port: 0 },
    amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue }
  })
  await until('the consumer to consume', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const a = await roomClient(t, edge, 'a')
  const b = await roomClient(t, edge, 'b.c')
  const transports = {
    http: { http: { url: edge.http, apiKey: API_KEY } },
    grpc: { grpc: { address: `127.0.0.1:${edge.app.notifyGrpc.port}`, apiKey: API_KEY } },
    amqp: { amqp: { url: AMQP_URL, exchange: names.exchange } },
    redis: { redis: redis.url, topicPrefix: redis.prefix }
  }
  for (const [name, opts] of Object.entries(transports)) {
    const { app } = await publisherApp(t, { streams: CHANNELS, ...opts })
    // Over AMQP nothing answers back: the ids are the AMQP messageIds, not message ids.
    const sameIds = name !== 'amqp'
    const one = await app.notify.publish({ stream: 'room', key: 'a', data: { via: name } })
    const first = await a.event('message')
    t.match(first, { stream: 'room:a', data: { via: name } }, `${name}: key`)
    if (sameIds) t.equal(first.id, one.id)
    const many = await app.notify.publish({ stream: 'room', keys: ['a', 'b.c'], data: { via: name, n: 2 } })
    t.equal(many.ids.length, 2, `${name}: one id per key`)
    const [toA, toB] = [await a.event('message'), await b.event('message')]
    t.match(toA, { stream: 'room:a', data: { via: name, n: 2 } })
    t.match(toB, { stream: 'room:b.c', data: { via: name, n: 2 } })
    if (sameIds) t.same([toA.id, toB.id], many.ids)
    await t.rejects(app.notify.publish({ stream: 'room', key: 'a/b', data: 1 } as never), { code: 'FST_NOTIFY_INVALID_KEY' }, `${name}: checked before it travels`)
  }
})
