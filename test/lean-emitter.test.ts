import t from 'tap'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import mqemitterRedis from 'mqemitter-redis'
import type { MQEmitter, Message } from 'mqemitter'
import { LeanRedisEmitter, notifyBus, type NotifyBusOptions } from '../plugins/index.js'
import { encodePacket } from '../plugins/bus/packet.js'
import { RedisHistoryStore } from '../plugins/history/redis-store.js'
import { messageTemplate } from '../plugins/message.js'
import { admin, busApp, recorder } from './abstract/bus.js'
import { logCapture } from './log-capture.js'
import { redisServer, sharedRedis, until } from './redis-server.js'

// The lean emitter's own promises, beyond the bus suite (bus-backends.test.ts): it reads and is
// read by mqemitter-redis instances, survives bad packets and Redis going away, and keeps the
// bus's publish outcome and re-subscription signal.

const LEAN: Pick<NotifyBusOptions, 'redisEmitter'> = { redisEmitter: 'lean' }

const message = (topic: string, id: string): { topic: string, id: string, frame: string, prev: string } => ({ topic, id, frame: `{"id":"${id}"}`, prev: '' })

t.test('refuses an unknown redisEmitter at registration', async (t) => {
  const { url } = await sharedRedis(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(notifyBus, { redis: url, redisEmitter: 'fast' as never }).ready() }, { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('instances on the lean emitter and on mqemitter-redis read each other, with the same outcome', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/u/order/YWxpY2U`
  const [lean, classic] = await Promise.all([busApp(t, { redis: url, ...LEAN }), busApp(t, { redis: url })])
  const [toLean, toClassic] = [recorder(), recorder()]
  await lean.notifyBus.subscribe(topic, toLean.listener)
  await classic.notifyBus.subscribe(topic, toClassic.listener)
  t.equal(await lean.notifyBus.publish(message(topic, '1-0')), 2, 'both instances subscribe')
  t.equal(await classic.notifyBus.publish(message(topic, '2-0')), 2)
  await Promise.all([toLean.next('2-0'), toClassic.next('2-0')])
  t.same(toLean.received, [message(topic, '1-0'), message(topic, '2-0')], 'the lean one reads both, prev and all')
  t.same(toClassic.received, toLean.received, 'and mqemitter-redis reads what the lean one publishes')
})

t.test("what the history append script PUBLISHes (Lua's cmsgpack) arrives with its id, frame and prev", async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/u/order/Ym9i`
  const lean = await busApp(t, { redis: url, ...LEAN })
  const r = recorder()
  await lean.notifyBus.subscribe(topic, r.listener)
  const store = new RedisHistoryStore({ client: admin(t, url), keyPrefix: `${prefix}:history:`, publish: true })
  const first = await store.append(topic, messageTemplate('order', { n: 1 }), { size: 10, ttl: 60 })
  const second = await store.append(topic, messageTemplate('order', { n: 2 }), { size: 10, ttl: 60 })
  t.equal(second.receivers, 1, 'PUBLISH counted the lean subscriber')
  await r.next(second.id)
  t.same(r.received, [
    { topic, id: first.id, frame: first.frame, prev: '' },
    { topic, id: second.id, frame: second.frame, prev: first.id }
  ])
})

t.test("what a plain mqemitter-redis emit()s (msgpack-lite's encoding) arrives too", async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/p/ticker`
  const lean = await busApp(t, { redis: url, ...LEAN })
  const r = recorder()
  await lean.notifyBus.subscribe(topic, r.listener)
  const other = mqemitterRedis({ connectionString: url }) as unknown as MQEmitter
  t.teardown(() => new Promise<void>((resolve) => other.close(resolve)))
  const sent = { topic, id: '9-0', frame: '{"é":"ünïcödé ✓"}', ts: 1732900000123, n: -3, big: 70000, ok: true, nothing: null }
  await new Promise<void>((resolve, reject) => other.emit(sent, (err) => err ? reject(err) : resolve()))
  t.same(await r.next('9-0'), sent)
})

t.test('a packet it cannot decode is reported on state and drops nothing after it', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/p/system`
  const log = logCapture()
  const app = await busApp(t, { redis: url, ...LEAN }, log)
  const r = recorder()
  await app.notifyBus.subscribe(topic, r.listener)
  const raw = admin(t, url)
  await raw.publish(topic, Buffer.from([0x82, 0xa2, 0x69]))
  await raw.publish(topic, Buffer.from('not msgpack at all'))
  await raw.publish(topic, encodePacket({ id: 'x', msg: 'no topic' }))
  await app.notifyBus.publish(message(topic, '1-0'))
  await r.next('1-0')
  t.same(r.received.map((m) => m.id), ['1-0'])
  await log.next('Redis')
  t.ok(log.lines.some((line) => /msgpack/.test(JSON.stringify(line.err ?? ''))), 'the bad packet is logged')
})

t.test('refuses wildcard topics, as sharded pub/sub does', async (t) => {
  const { url } = await sharedRedis(t)
  const pub = new Redis(url)
  const sub = new Redis(url)
  t.teardown(() => { pub.disconnect(); sub.disconnect() })
  const emitter = new LeanRedisEmitter(pub as never, sub as never)
  t.throws(() => emitter.on('notify/p/+', () => {}), { code: 'FST_NOTIFY_UNSUPPORTED_TOPIC' })
  t.throws(() => emitter.on('notify/#', () => {}), { code: 'FST_NOTIFY_UNSUPPORTED_TOPIC' })
})

t.test('as an MQEmitter: listeners per topic, removal, emit and close', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const pub = new Redis(url)
  const sub = new Redis(url)
  t.teardown(() => { pub.disconnect(); sub.disconnect() })
  const emitter = new LeanRedisEmitter(pub as never, sub as never)
  t.equal(emitter.current, 0)
  t.equal(emitter.concurrent, Infinity)
  const topic = `${prefix}/p/direct`
  const got: string[] = []
  const first = (m: Message, done: () => void): void => { got.push(`first ${m.n}`); done() }
  const second = (m: Message, done: () => void): void => { got.push(`second ${m.n}`); done() }
  await new Promise<void>((resolve) => emitter.on(topic, first, resolve))
  await new Promise<void>((resolve) => emitter.on(topic, second, resolve))
  const emit = (n: number): Promise<void> => new Promise((resolve, reject) => emitter.emit({ topic, n }, (err) => err ? reject(err) : resolve()))
  await emit(1)
  await until('both listeners to have it', () => got.length === 2)
  await new Promise<void>((resolve) => emitter.removeListener(topic, first, resolve))
  await new Promise<void>((resolve) => emitter.removeListener(topic, first, resolve))
  await emit(2)
  await until('the second listener to have it', () => got.length === 3)
  t.same(got, ['first 1', 'second 1', 'second 2'])
  await new Promise<void>((resolve) => emitter.removeListener(topic, second, resolve))
  const probe = admin(t, url)
  await until('the channel to be released', async () => Number((await probe.pubsub('NUMSUB', topic))[1]) === 0)
  await new Promise<void>((resolve) => emitter.close(resolve))
  await t.rejects(emit(3), { message: /closed/ })
})

t.test('a subscribe or publish on a dead connection is reported, and calls back', async (t) => {
  const server = await redisServer(t)
  const pub = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  const sub = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  t.teardown(() => { pub.disconnect(); sub.disconnect() })
  const emitter = new LeanRedisEmitter(pub as never, sub as never)
  const errors: unknown[] = []
  emitter.state.on('error', (err) => errors.push(err))
  await until('connected', () => pub.status === 'ready' && sub.status === 'ready')
  await new Promise<void>((resolve) => emitter.on('notify/p/a', () => {}, resolve))
  await server.stop()
  await until('the connections to notice', () => pub.status !== 'ready' && sub.status !== 'ready')
  await new Promise<void>((resolve) => emitter.on('notify/p/b', () => {}, resolve))
  await new Promise<void>((resolve) => emitter.removeListener('notify/p/a', () => {}, resolve))
  await new Promise<void>((resolve) => emitter.removeListener('notify/p/b', () => {}, resolve))
  const listener = (): void => {}
  await new Promise<void>((resolve) => emitter.on('notify/p/c', listener, resolve))
  await new Promise<void>((resolve) => emitter.removeListener('notify/p/c', listener, resolve))
  await t.rejects(new Promise<void>((resolve, reject) => emitter.emit({ topic: 'notify/p/a' }, (err) => err ? reject(err) : resolve())))
  t.ok(errors.length >= 2, `the failures were reported (${errors.length})`)
})

t.test('when Redis goes away and comes back, the bus on it re-subscribes and says so', async (t) => {
  const server = await redisServer(t)
  const log = logCapture()
  const app = await busApp(t, { redis: server.url, ...LEAN }, log)
  const r = recorder()
  await app.notifyBus.subscribe('notify/p/system', r.listener)
  let resubscribed = 0
  app.notifyBus.onResubscribe(() => { resubscribed++ })
  await server.stop()
  await log.next('Redis connection lost')
  await t.rejects(app.notifyBus.publish(message('notify/p/system', 'lost-0')), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 })
  await server.start()
  await log.next('Redis subscriptions restored', 10_000)
  t.equal(resubscribed, 1)
  await until('both connections to be back', () => app.notifyBus.health().healthy)
  await app.notifyBus.publish(message('notify/p/system', 'back-0'))
  await r.next('back-0')
  t.same(r.received.map((m) => m.id), ['back-0'])
})

t.test('a CLIENT KILL of its subscriber is followed by one re-subscription signal, with the channel live', async (t) => {
  const server = await redisServer(t)
  const app = await busApp(t, { redis: server.url, ...LEAN })
  const redis = admin(t, server.url)
  await app.notifyBus.subscribe('notify/p/one', recorder().listener)
  const told = new Promise<number>((resolve) => app.notifyBus.onResubscribe(() => {
    redis.pubsub('NUMSUB', 'notify/p/one').then((reply) => resolve(Number(reply[1])), () => resolve(-1))
  }))
  t.equal(Number(await redis.client('KILL', 'TYPE', 'pubsub')), 1)
  t.equal(await told, 1, 'subscribed on Redis when told')
})
