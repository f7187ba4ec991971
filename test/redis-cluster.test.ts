// The bus, history and tickets on a real three-master Redis Cluster started by this file.
import t from 'tap'
import Fastify from 'fastify'
import { Cluster, type Redis } from 'ioredis'
import { notifyBus, RedisHistoryStore, RedisTicketStore, type NotifyBusOptions } from '../plugins/index.js'
import { ClusterEmitter, createClusterEmitter } from '../plugins/bus/cluster-emitter.js'
import { shardedChannel } from '../plugins/topics.js'
import { messageTemplate } from '../plugins/message.js'
import { busSuite } from './abstract/bus.js'
import { historyStoreSuite } from './abstract/history-store.js'
import { ticketStoreSuite } from './abstract/ticket-store.js'
import { redisCluster, type ClusterSetup } from './redis-cluster.js'
import { until } from './redis-server.js'
import { connect, publish, ticket } from './helpers.js'
import { exampleApp } from './failover-load.js'

type Test = { teardown: (fn: () => unknown) => void }

async function bus (t: Test, opts: NotifyBusOptions): Promise<ReturnType<typeof Fastify>['notifyBus']> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(notifyBus, opts)
  await app.ready()
  return app.notifyBus
}

function clusterClient (t: Test, setup: ClusterSetup): Cluster {
  const client = new Cluster(setup.nodes)
  t.teardown(() => client.quit())
  return client
}

/** Lets time pass in the cluster by taking `seconds` off every key's TTL under `prefix`, on every master. */
async function elapse (client: Cluster, prefix: string, seconds: number): Promise<void> {
  for (const node of client.nodes('master')) {
    for (const key of await node.keys(`${prefix}*`)) {
      const left = await node.pttl(key) - seconds * 1000
      if (left > 0) await node.pexpire(key, left)
      else await node.del(key)
    }
  }
}

/** SHARDNUMSUB of `channel` on the node at `port`. */
async function shardSubscribers (node: Redis, channel: string): Promise<number> {
  return ((await node.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1]
}

t.test('on a three-master Redis Cluster', async (t) => {
  const setup = await redisCluster(t)
  const redis = { cluster: setup.nodes }

  t.test('the sharded bus passes the bus suite', async (t) => {
    busSuite({ test: t.test.bind(t), prefix: 'cluster-bus', builder: (t) => bus(t, { redis }) })
  })

  t.test('history on the cluster passes the history store suite, appending and SPUBLISHing in one script', async (t) => {
    historyStoreSuite(t, async (t, now) => new RedisHistoryStore({ client: clusterClient(t, setup), now, publish: 'sharded' }))
  })

  t.test('tickets on the cluster pass the ticket store suite', async (t) => {
    ticketStoreSuite({
      test: t.test.bind(t),
      async builder (t) {
        const client = clusterClient(t, setup)
        const keyPrefix = `tickets-${Math.random().toString(36).slice(2)}:`
        return { store: new RedisTicketStore({ client, keyPrefix }), elapse: (seconds) => elapse(client, keyPrefix, seconds) }
      }
    })
  })

  t.test('a topic is subscribed on the master that owns its slot only, with its last listener it is gone', async (t) => {
    const emitter = createClusterEmitter(redis)
    t.teardown(() => { emitter.pubConn.disconnect(); emitter.subConn.disconnect() })
    const topics = ['notify/u/order/YWxpY2U', 'notify/u/order/Ym9i', 'notify/p/promotional', 'notify/p/system', 'notify/u/reward/Y2Fyb2w']
    const listener = (_message: unknown, done: () => void): void => done()
    for (const topic of topics) await new Promise<void>((resolve) => emitter.on(topic, listener, resolve))
    const owners = new Set<number>()
    for (const topic of topics) {
      const channel = shardedChannel(topic)
      const owner = await setup.masterOf(await emitter.pubConn.cluster('KEYSLOT', channel) as number)
      owners.add(owner)
      for (const server of setup.servers) {
        t.equal(await shardSubscribers(setup.node(server.port), channel), server.port === owner ? 1 : 0, `${topic} on ${server.port}`)
      }
    }
    t.ok(owners.size > 1, 'the topics spread over more than one shard')
    for (const topic of topics) await new Promise<void>((resolve) => emitter.removeListener(topic, listener, resolve))
    for (const topic of topics) {
      const owner = await setup.masterOf(await emitter.pubConn.cluster('KEYSLOT', shardedChannel(topic)) as number)
      t.equal(await shardSubscribers(setup.node(owner), shardedChannel(topic)), 0, `${topic} unsubscribed`)
    }
  })

  t.test('the history script SPUBLISHes what the cluster emitter delivers, with the same fields the bus carries', async (t) => {
    const emitter = createClusterEmitter(redis)
    t.teardown(() => { emitter.pubConn.disconnect(); emitter.subConn.disconnect() })
    const store = new RedisHistoryStore({ client: clusterClient(t, setup), publish: 'sharded' })
    const topic = 'notify/u/order/ZGF2ZQ'
    const received: unknown[] = []
    await new Promise<void>((resolve) => emitter.on(topic, (message, done) => { received.push(message); done() }, resolve))
    const appended = []
    for (let n = 0; n < 3; n++) appended.push(await store.append(topic, messageTemplate('order', { text: `é 漢字 ${n}` }), { size: 10, ttl: 60 }))
    await until('three messages', () => received.length === 3)
    t.same(appended.map((m) => m.receivers), [1, 1, 1], 'SPUBLISH\'s reply: one instance subscribed')
    t.same(received, appended.map(({ receivers: _receivers, ...message }) => message), 'in history order, as appended')
  })

  t.test('a message that is not JSON, or on a channel not its topic\'s, is dropped with an error event', async (t) => {
    const emitter = createClusterEmitter(redis)
    t.teardown(() => { emitter.pubConn.disconnect(); emitter.subConn.disconnect() })
    const topic = 'notify/p/garbage'
    const received: unknown[] = []
    await new Promise<void>((resolve) => emitter.on(topic, (message, done) => { received.push(message); done() }, resolve))
    const errors: unknown[] = []
    emitter.state.on('error', (err) => errors.push(err))
    await emitter.pubConn.spublish(shardedChannel(topic), 'not json')
    await emitter.pubConn.spublish(shardedChannel(topic), JSON.stringify({ topic: 'notify/p/other', id: '1-0', frame: '{}' }))
    await new Promise<void>((resolve, reject) => emitter.emit({ topic, id: '2-0', frame: '{}' }, (err) => err ? reject(err) : resolve()))
    await until('the good one', () => received.length === 1)
    t.same(received, [{ topic, id: '2-0', frame: '{}' }])
    t.equal(errors.length, 1)
  })

  t.test('wildcard topics are refused, a closed emitter refuses to emit', async (t) => {
    const emitter = createClusterEmitter(redis)
    t.teardown(() => { emitter.pubConn.disconnect(); emitter.subConn.disconnect() })
    t.ok(emitter instanceof ClusterEmitter)
    t.throws(() => emitter.on('notify/u/+/x', (_m, done) => done()), { code: 'FST_NOTIFY_UNSUPPORTED_TOPIC' })
    t.throws(() => emitter.on('notify/#', (_m, done) => done()), { code: 'FST_NOTIFY_UNSUPPORTED_TOPIC' })
    t.equal(emitter.current, 0)
    t.equal(emitter.concurrent, 0)
    await new Promise<void>((resolve) => emitter.close(resolve))
    await t.rejects(new Promise<void>((resolve, reject) => emitter.emit({ topic: 'notify/p/x' }, (err) => err ? reject(err) : resolve())), /closed/)
  })

  t.test('the seed scenario on two example-app instances over REDIS_CLUSTER: a ticket from B, a socket on A, orders from B; resume on B', async (t) => {
    const [a, b] = [await exampleApp(t, { REDIS_CLUSTER: setup.nodeList, ORDER_STEP_MS: '50' }), await exampleApp(t, { REDIS_CLUSTER: setup.nodeList, ORDER_STEP_MS: '50' })]
    t.same((await a.app.inject('/health')).json(), { status: 'ok', redis: { bus: { pub: 'ready', sub: 'ready' }, tickets: 'ready' } })
    const jwt = b.app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' })
    const { client: alice } = await connect(t, `${a.ws}/ws?ticket=${await ticket(b.http, jwt)}`)
    await alice.subscribe('order')
    const topic = a.app.notify.streams.get('order')!.topic('alice')
    const owner = await setup.masterOf(await a.app.redis.cluster('KEYSLOT', shardedChannel(topic)) as number)
    t.equal(await shardSubscribers(setup.node(owner), shardedChannel(topic)), 1, 'A holds alice\'s channel on the owning master')

    const res = await fetch(`${b.http}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice' }) })
    t.equal(res.status, 202)
    const updates = [await alice.event('message'), await alice.event('message'), await alice.event('message')]
    t.same(updates.map((m) => m.data.status), ['placed', 'paid', 'shipped'])
    await alice.close()
    await until('A let go of alice\'s channel', async () => await shardSubscribers(setup.node(owner), shardedChannel(topic)) === 0)

    const missed = []
    for (let n = 0; n < 5; n++) missed.push((await publish(a.http, { stream: 'order', user: 'alice', data: { orderId: `o${n}`, status: 'placed' } })).body.id)
    const { client: back } = await connect(t, `${b.ws}/ws?ticket=${await ticket(a.http, jwt)}`)
    t.same((await back.subscribe({ stream: 'order', since: updates[2].id })).gaps, [], 'history on the cluster reaches back')
    const replay = []
    for (let n = 0; n < 5; n++) replay.push((await back.event('message')).id)
    t.same(replay, missed, 'every message missed, in order, on the other instance')
  })

  t.test('the bus reports the cluster clients\' state and closes them on app close', async (t) => {
    const app = Fastify()
    await app.register(notifyBus, { redis })
    await app.ready()
    t.same(app.notifyBus.health(), { healthy: true, backend: 'redis', redis: { pub: 'ready', sub: 'ready' } })
    await app.close()
    t.same(app.notifyBus.health().redis, { pub: 'end', sub: 'end' })
  })
})

t.test('cluster options are checked at registration', async (t) => {
  for (const cluster of [[], 'localhost:7000', [{ host: 'localhost', port: 0 }], [{ host: 7, port: 7000 }], [null], ['localhost:7000']]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(notifyBus, { redis: { cluster } as never }) }, { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(cluster))
  }
})
