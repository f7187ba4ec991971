// One shard's master of a six-node Redis Cluster (three masters, a replica each) is SIGKILLed while
// a private stream on that shard runs at about 500 messages/s across two example-app instances.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { compareMessageIds } from '../plugins/index.js'
import { createClusterEmitter } from '../plugins/bus/cluster-emitter.js'
import { shardedChannel } from '../plugins/topics.js'
import { API_KEY, SECRET, connect, publish, ticket, urls, watchProcessFailures, type Frame } from './helpers.js'
import { publisher, receiveUntil } from './failover-load.js'
import { redisCluster } from './redis-cluster.js'
import { until } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

async function exampleApp (t: Test, nodes: string): Promise<{ app: FastifyInstance, http: string, ws: string }> {
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, REDIS_CLUSTER: nodes })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

t.test('a shard\'s master SIGKILLed under 500 msg/s: other shards go on, sockets stay open, publishes answer 202 or 503 in time, delivery resumes after the replica takes over, resume reports a gap', async (t) => {
  const failures = watchProcessFailures(t)
  const setup = await redisCluster(t, 1)
  const [a, b] = [await exampleApp(t, setup.nodeList), await exampleApp(t, setup.nodeList)]
  const jwt = a.app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' })
  const { client: alice } = await connect(t, `${a.ws}/ws?ticket=${await ticket(a.http, jwt)}`)
  await alice.subscribe('reward')
  const channel = shardedChannel(a.app.notify.streams.get('reward')!.topic('alice'))
  const slot = await a.app.redis.cluster('KEYSLOT', channel) as number
  const doomed = await setup.masterOf(slot)
  // A user whose channel lives on another shard, to show the rest of the cluster is unaffected.
  let other = ''
  for (let n = 0; other === ''; n++) {
    const topic = a.app.notify.streams.get('reward')!.topic(`user-${n}`)
    if (await setup.masterOf(await a.app.redis.cluster('KEYSLOT', shardedChannel(topic)) as number) !== doomed) other = `user-${n}`
  }
  // A bare emitter on the same channel, to see it announce its re-subscription.
  const watcher = createClusterEmitter({ cluster: setup.nodes })
  t.teardown(() => { watcher.pubConn.disconnect(); watcher.subConn.disconnect() })
  await new Promise<void>((resolve) => watcher.on(channel.slice(1, -1), (_message, done) => done(), resolve))
  watcher.state.on('error', () => {})
  const resubscribed = new Promise((resolve) => watcher.state.once('resubscribed', resolve))

  const load = publisher(b.http, 'reward', 'alice')
  const received: Frame[] = []
  while (received.length < 200) received.push(await alice.next((f) => f.event === 'message', 10_000))
  const beforeKill = received[received.length - 1]
  const killedAt = Date.now()
  await setup.servers.find((server) => server.port === doomed)!.stop()
  t.equal((await publish(a.http, { stream: 'reward', user: other, data: {} })).status, 202, 'a shard still up takes publishes during the failover')

  await until('the replica promoted', async () => await setup.masterOf(slot) !== doomed, 20_000)
  const promoted = setup.node(await setup.masterOf(slot))
  t.comment(`replica promoted ${Date.now() - killedAt} ms after the kill`)
  await resubscribed
  t.comment(`emitter re-subscribed ${Date.now() - killedAt} ms after the kill`)
  t.equal(((await promoted.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1] >= 1, true, '\'resubscribed\' comes once the channel is live on the new master')
  await until('A and the watcher re-subscribed on the new master', async () => ((await promoted.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1] === 2, 20_000)
  const resubscribedAt = Date.now()
  await until('300 publishes accepted after the re-subscription', () => load.log.filter((p) => p.startedAt >= resubscribedAt && p.status === 202).length >= 300, 30_000)
  await load.stop()

  const after = load.log.filter((p) => p.startedAt >= resubscribedAt && p.status === 202)
  await receiveUntil(alice, received, after[after.length - 1].id!)
  t.equal(alice.closeCode, null, 'the socket stayed open')
  const live = received.filter((m) => compareMessageIds(m.id, after[0].id!) >= 0)
  t.same(live.map((m) => m.id), after.map((p) => p.id), 'every message accepted after the failover arrived live, in order, once')
  t.ok(received.every((m, i) => i === 0 || compareMessageIds(received[i - 1].id, m.id) < 0), 'ids only increase on the live socket')

  const statuses = new Set(load.log.map((p) => p.status))
  t.ok([...statuses].every((status) => status === 202 || status === 503), `every publish answered 202 or 503 (${[...statuses]})`)
  const slowest = Math.max(...load.log.map((p) => p.ms))
  t.ok(slowest < 1500, `no publish took 1.5 s or more (slowest ${slowest} ms)`)
  t.comment(`${load.log.length} publishes, ${load.log.filter((p) => p.status === 503).length} answered 503 during the failover, slowest ${slowest} ms`)

  // Tickets work again (their keys spread over every shard), and resume reports the failover.
  const { client: onB } = await connect(t, `${b.ws}/ws?ticket=${await ticket(b.http, jwt)}`)
  t.same((await onB.subscribe({ stream: 'reward', since: beforeKill.id })).gaps, ['reward'], 'a resume from before the failover is told of a gap')
  const { client: resumed } = await connect(t, `${b.ws}/ws?ticket=${await ticket(a.http, jwt)}`)
  t.same((await resumed.subscribe({ stream: 'reward', since: after[after.length - 51].id! })).gaps, [], 'a resume from after the failover has none')
  const replay: Frame[] = []
  await receiveUntil(resumed, replay, after[after.length - 1].id!)
  t.same(replay.map((m) => m.id), after.slice(-50).map((p) => p.id), 'and gets every message after since, in order')
  t.same(failures, [], 'no unhandled error in the process')
})
