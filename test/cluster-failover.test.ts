// One shard's master of a six-node Redis Cluster (three masters, a replica each) is SIGKILLed while
// a private stream on that shard runs at about 500 messages/s across two example-app instances.
import t from 'tap'
import { createClusterEmitter } from '../plugins/bus/cluster-emitter.js'
import { shardedChannel } from '../plugins/topics.js'
import { connect, publish, ticket, watchProcessFailures, type Client, type Frame } from './helpers.js'
import { checkRecovered, checkResume, exampleApp, publisher } from './failover-load.js'
import { redisCluster } from './redis-cluster.js'
import { until } from './redis-server.js'

t.test('a shard\'s master SIGKILLed under 500 msg/s: other shards go on, sockets stay open, publishes answer 202 or 503 in time, delivery resumes after the replica takes over, resume reports a gap', async (t) => {
  const failures = watchProcessFailures(t)
  const setup = await redisCluster(t, 1)
  const [a, b] = [await exampleApp(t, { REDIS_CLUSTER: setup.nodeList }), await exampleApp(t, { REDIS_CLUSTER: setup.nodeList })]
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

  const busResubscribed = new Promise((resolve) => a.app.notifyBus.onResubscribe(() => resolve(Date.now())))
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
  t.comment(`A's bus announced its re-subscription ${await busResubscribed as number - killedAt} ms after the kill`)
  await until('A and the watcher re-subscribed on the new master', async () => ((await promoted.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1] === 2, 20_000)
  const resubscribedAt = Date.now()
  const after = await checkRecovered(t, load, alice, received, resubscribedAt)
  // Tickets work again (their keys spread over every shard), and resume reports the failover.
  const open = async (): Promise<Client> => (await connect(t, `${b.ws}/ws?ticket=${await ticket(a.http, jwt)}`)).client
  await checkResume(t, open, 'reward', beforeKill.id, after)
  t.same(failures, [], 'no unhandled error in the process')
})
