import t from 'tap'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import fastifyRedis from '@fastify/redis'
import mqemitterRedis from 'mqemitter-redis'
import type { MQEmitter } from 'mqemitter'
import { notifyBus, type NotifyBusOptions } from '../plugins/index.js'
import { admin, busApp, recorder } from './abstract/bus.js'
import { logCapture } from './log-capture.js'
import { redisServer, sharedRedis, until } from './redis-server.js'

async function register (app: ReturnType<typeof Fastify>, opts: NotifyBusOptions): Promise<void> {
  await app.register(notifyBus, opts)
  await app.ready()
}

const message = (topic: string, id: string): { topic: string, id: string, frame: string } => ({ topic, id, frame: `{"id":"${id}"}` })

t.test('rejects options it cannot use', async (t) => {
  const { url } = await sharedRedis(t)
  const cases: Array<[string, NotifyBusOptions]> = [
    ['emitter and redis together', { redis: url, emitter: mqemitterRedis({ connectionString: url }) as unknown as MQEmitter }],
    ['a number for redis', { redis: 42 as never }],
    ['a client without duplicate()', { redis: { client: {} as never } }],
    ['a negative readyTimeout', { redis: url, readyTimeout: -1 }]
  ]
  for (const [name, opts] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(register(app, opts), { code: 'FST_NOTIFY_INVALID_OPTION' }, name)
    const given = opts.emitter as unknown as { close?: (cb: () => void) => void } | undefined
    if (given?.close) await new Promise<void>((resolve) => given.close!(resolve))
  }
})

t.test('builds its connections from every ioredis option given, not from a connection string', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const { hostname, port } = new URL(url)
  const app = await busApp(t, { redis: { host: hostname, port: Number(port), connectionName: `${prefix}-bus` } })
  await app.notifyBus.subscribe(`${prefix}/named`, recorder().listener)
  const clients = (await admin(t, url).client('LIST') as string).split('\n').filter((line) => line.includes(` name=${prefix}-bus `))
  t.equal(clients.length, 2, 'both connections carry the name')
  t.equal(clients.filter((line) => line.includes(' sub=1 ')).length, 1, 'one of them is the subscriber')
})

t.test("duplicates a given client, such as @fastify/redis's ioredis 6, and leaves it open", async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const owner = Fastify()
  t.teardown(() => owner.close())
  await owner.register(fastifyRedis, { url })
  const app = await busApp(t, { redis: { client: owner.redis } })
  const r = recorder()
  await app.notifyBus.subscribe(`${prefix}/dup`, r.listener)
  await app.notifyBus.publish(message(`${prefix}/dup`, '1-0'))
  await r.next('1-0')
  await app.close()
  t.equal(owner.redis.status, 'ready')
  t.equal(await owner.redis.ping(), 'PONG')
})

t.test('a message published on one instance reaches each subscribed instance once', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/p/promotional`
  const apps = await Promise.all([busApp(t, { redis: url }), busApp(t, { redis: url }), busApp(t, { redis: url })])
  const recorders = apps.map(() => recorder())
  await Promise.all(apps.map((app, i) => app.notifyBus.subscribe(topic, recorders[i].listener)))
  await apps[0].notifyBus.publish(message(topic, '1-0'))
  await apps[2].notifyBus.publish(message(topic, '2-0'))
  await Promise.all(recorders.map((r) => r.next('2-0')))
  for (const r of recorders) t.same(r.received.map((m) => m.id), ['1-0', '2-0'])
})

t.test('two instances publishing one message id on one topic (no history, same millisecond) both reach a subscriber', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/p/ticker`
  const apps = await Promise.all([busApp(t, { redis: url }), busApp(t, { redis: url }), busApp(t, { redis: url })])
  const r = recorder()
  await apps[2].notifyBus.subscribe(topic, r.listener)
  await apps[0].notifyBus.publish({ topic, id: '7-0', frame: '{"from":"a"}' })
  await apps[1].notifyBus.publish({ topic, id: '7-0', frame: '{"from":"b"}' })
  await apps[0].notifyBus.publish(message(topic, '8-0'))
  await r.next('8-0')
  t.same(r.received.map((m) => m.frame), ['{"from":"a"}', '{"from":"b"}', '{"id":"8-0"}'], 'neither is taken for a duplicate of the other')
})

t.test("a publish resolves with PUBLISH's reply: the instances subscribed to the topic", async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const topic = `${prefix}/u/order/YWxpY2U`
  const apps = await Promise.all([busApp(t, { redis: url }), busApp(t, { redis: url }), busApp(t, { redis: url })])
  const [a, b] = [recorder(), recorder()]
  t.equal(await apps[0].notifyBus.publish(message(topic, '1-0')), 0, 'nobody subscribes')
  await apps[1].notifyBus.subscribe(topic, a.listener)
  await apps[2].notifyBus.subscribe(topic, b.listener)
  t.equal(await apps[0].notifyBus.publish(message(topic, '2-0')), 2, 'two instances, not the publisher')
  await apps[1].notifyBus.unsubscribe(topic, a.listener)
  t.equal(await apps[0].notifyBus.publish(message(topic, '3-0')), 1)
  await b.next('3-0')
  t.same(b.received.map((m) => m.id), ['2-0', '3-0'], 'mqemitter-redis receives what the bus PUBLISHes itself')
})

t.test('publishes through a prefixed mqemitter-redis on its prefixed channels', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const { MQEmitterRedisPrefix } = mqemitterRedis as unknown as { MQEmitterRedisPrefix: new (prefix: string, opts: object) => MQEmitter }
  const emitters = [0, 1].map(() => new MQEmitterRedisPrefix(`${prefix}:`, { connectionString: url }))
  const apps = await Promise.all(emitters.map((emitter) => busApp(t, { emitter, closeEmitter: true })))
  const r = recorder()
  await apps[1].notifyBus.subscribe('notify/p/x', r.listener)
  t.equal(await apps[0].notifyBus.publish(message('notify/p/x', '1-0')), 1)
  t.same(await r.next('1-0'), message('notify/p/x', '1-0'), 'the receiver sees the topic without its prefix')
})

t.test('when Redis goes away', async (t) => {
  const server = await redisServer(t)
  const log = logCapture()
  const app = await busApp(t, { redis: server.url }, log)
  const r = recorder()
  await app.notifyBus.subscribe('notify/p/system', r.listener)
  await server.stop()
  await log.next('Redis connection lost')

  t.test('health says so', async (t) => {
    const health = app.notifyBus.health()
    t.equal(health.healthy, false)
    t.not(health.redis!.pub, 'ready')
  })

  t.test('a publish fails at once with 503 FST_NOTIFY_BUS_UNAVAILABLE instead of waiting in a queue', async (t) => {
    const started = Date.now()
    await t.rejects(app.notifyBus.publish(message('notify/p/system', 'lost-0')), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 })
    const took = Date.now() - started
    t.ok(took < 100, `answered in ${took} ms`)
  })

  t.test('the process keeps running, and delivery resumes on the same subscriptions once Redis is back', async (t) => {
    await server.start()
    await log.next('Redis connection restored', 10_000)
    t.equal(app.notifyBus.health().healthy, true)
    const probe = admin(t, server.url)
    // ioredis reports ready before its SUBSCRIBEs are replayed: wait for Redis to hold them.
    await until('the subscription to be replayed', async () => (await probe.pubsub('NUMSUB', 'notify/p/system'))[1] === 1)
    await app.notifyBus.publish(message('notify/p/system', 'back-0'))
    await r.next('back-0')
    t.same(r.received.map((m) => m.id), ['back-0'], 'the message published during the outage is not delivered')
    t.equal(log.lines.filter((line) => line.msg.includes('Redis connection lost')).length, 1, 'one warning per outage')
  })
})

t.test('closes within closeTimeout while Redis is down, without crashing', async (t) => {
  const server = await redisServer(t)
  const log = logCapture()
  const app = await busApp(t, { redis: server.url, closeTimeout: 500 }, log)
  await app.notifyBus.subscribe('notify/p/system', recorder().listener)
  await server.stop()
  await log.next('Redis connection lost')
  const started = Date.now()
  await app.close()
  const took = Date.now() - started
  t.ok(took < 1000, `closed in ${took} ms`)
})

t.test('when Redis stops answering, a publish answers 503 after publishTimeout and close takes closeTimeout', async (t) => {
  const server = await redisServer(t)
  const app = await busApp(t, { redis: server.url, publishTimeout: 300, closeTimeout: 300 })
  server.pause()
  t.teardown(() => server.resume())
  t.equal(app.notifyBus.health().healthy, true, 'the connections still look fine')
  let started = Date.now()
  // Sent and not answered: the PUBLISH may still go out once Redis answers.
  await t.rejects(app.notifyBus.publish(message('notify/p/system', '1-0')), { code: 'FST_NOTIFY_OUTCOME_UNKNOWN', statusCode: 503 })
  let took = Date.now() - started
  t.ok(took >= 290 && took < 1000, `answered in ${took} ms`)
  started = Date.now()
  await app.close()
  took = Date.now() - started
  t.ok(took >= 290 && took < 1000, `closed in ${took} ms`)
})

t.test('closing quits both connections', async (t) => {
  const server = await redisServer(t)
  const probe = admin(t, server.url)
  const clients = async (): Promise<number> => (await probe.client('LIST') as string).trim().split('\n').length
  const before = await clients()
  const app = await busApp(t, { redis: server.url })
  t.equal(await clients(), before + 2)
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 500, 'promptly')
  await until('Redis to see both connections gone', async () => await clients() === before)
  t.equal(await clients(), before)
})

t.test('fails registration with FST_NOTIFY_BUS_UNAVAILABLE when Redis cannot be reached', async (t) => {
  const server = await redisServer(t)
  await server.stop()
  const app = Fastify()
  t.teardown(() => app.close())
  const started = Date.now()
  await t.rejects(register(app, { redis: server.url, readyTimeout: 300 }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' })
  t.ok(Date.now() - started < 1500, 'after readyTimeout')
})

t.test('watches a given mqemitter-redis', async (t) => {
  const server = await redisServer(t)
  const emitter = mqemitterRedis({ connectionString: server.url }) as unknown as MQEmitter & { state: NodeJS.EventEmitter }

  t.test('logs its Redis errors instead of crashing, and leaves it open on close', async (t) => {
    const log = logCapture()
    const app = await busApp(t, { emitter }, log)
    t.equal(app.notifyBus.health().backend, 'redis')
    t.equal(emitter.state.listenerCount('error'), 1)
    await server.stop()
    await log.next('Redis connection lost')
    t.equal(app.notifyBus.health().healthy, false)
    await server.start()
    await log.next('Redis connection restored', 10_000)
    await app.close()
    t.equal(emitter.state.listenerCount('error'), 0, 'its listener goes with the app')
    const r = recorder()
    await app.notifyBus.subscribe('notify/p/after', r.listener)
    await app.notifyBus.publish(message('notify/p/after', '1-0'))
    await r.next('1-0')
    t.pass('the emitter still works')
  })

  t.test('closes it when closeEmitter is set', async (t) => {
    const app = await busApp(t, { emitter, closeEmitter: true })
    await app.close()
    const { pubConn, subConn } = emitter as unknown as { pubConn: Redis, subConn: Redis }
    t.same([pubConn.status, subConn.status], ['end', 'end'])
  })

  t.test('cuts its connections off when it cannot close within closeTimeout', async (t) => {
    const stuck = mqemitterRedis({ connectionString: server.url }) as unknown as MQEmitter & { pubConn: Redis, subConn: Redis }
    const app = await busApp(t, { emitter: stuck, closeEmitter: true, closeTimeout: 300 })
    // Frozen, Redis never answers QUIT.
    server.pause()
    t.teardown(() => server.resume())
    const started = Date.now()
    await app.close()
    const took = Date.now() - started
    t.ok(took >= 290 && took < 1000, `closed in ${took} ms`)
    await until('both connections to end', () => stuck.pubConn.status === 'end' && stuck.subConn.status === 'end')
  })
})

t.test('tells its users each time its subscriber holds every channel again, not before', async (t) => {
  const server = await redisServer(t)
  const app = await busApp(t, { redis: server.url })
  const redis = admin(t, server.url)
  const channels = ['notify/p/one', 'notify/p/two']
  for (const channel of channels) await app.notifyBus.subscribe(channel, recorder().listener)
  const seen: number[][] = []
  let wake = (): void => {}
  const off = app.notifyBus.onResubscribe(() => {
    // Asked the moment it is told: both channels are subscribed on Redis already.
    redis.pubsub('NUMSUB', ...channels).then((reply) => {
      seen.push([Number(reply[1]), Number(reply[3])])
      wake()
    })
  })
  for (let drop = 1; drop <= 2; drop++) {
    const told = new Promise<void>((resolve) => { wake = resolve })
    t.equal(Number(await redis.client('KILL', 'TYPE', 'pubsub')), 1)
    await told
  }
  t.same(seen, [[1, 1], [1, 1]])
  off()
  await redis.client('KILL', 'TYPE', 'pubsub')
  await until('the subscriber to be back', async () => Number((await redis.pubsub('NUMSUB', channels[0]))[1]) === 1)
  t.equal(seen.length, 2, 'a removed listener is not called')
})

t.test('the in-process bus has nothing to re-subscribe', async (t) => {
  const app = await busApp(t, {})
  const off = app.notifyBus.onResubscribe(() => t.fail('never'))
  t.type(off, 'function')
  off()
})
