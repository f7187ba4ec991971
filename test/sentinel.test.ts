// Redis through Sentinel: master, replica and three sentinels as real processes; the master is
// SIGKILLed while a private stream runs at about 500 messages/s across two example-app instances.
import t from 'tap'
import { Redis } from 'ioredis'
import { loadConfig } from '../example-app/config.js'
import { compareMessageIds } from '../plugins/index.js'
import { connect, registrationError, ticket, watchProcessFailures, type Client, type Frame } from './helpers.js'
import { checkRecovered, checkResume, exampleApp, publisher } from './failover-load.js'
import { until } from './redis-server.js'
import { redisSentinel } from './redis-sentinel.js'

t.test('through Sentinel, a SIGKILLed master under 500 msg/s: sockets stay open, publishes answer 202 or 503 in time, delivery and tickets come back, resume reports the failover as a gap', async (t) => {
  const failures = watchProcessFailures(t)
  const sentinel = await redisSentinel(t)
  const env = { REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name }
  const [a, b] = [await exampleApp(t, env), await exampleApp(t, env)]
  const jwt = a.app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' })
  const { client: alice } = await connect(t, `${a.ws}/ws?ticket=${await ticket(a.http, jwt)}`)
  await alice.subscribe('reward')
  const topic = a.app.notify.streams.get('reward')!.topic('alice')

  const load = publisher(b.http, 'reward', 'alice')
  const received: Frame[] = []
  while (received.length < 200) received.push(await alice.next((f) => f.event === 'message', 10_000))
  const beforeKill = received[received.length - 1]
  await sentinel.master.stop()
  await sentinel.masterIs(sentinel.replica.port)
  // The bus of A is back once it holds alice's channel on the promoted replica; from then on
  // everything published must arrive live, on the socket that was open all along.
  const promoted = new Redis(sentinel.replica.url)
  t.teardown(() => promoted.disconnect())
  await until('A re-subscribed on the new master', async () => ((await promoted.pubsub('NUMSUB', topic)) as [string, number])[1] === 1, 20_000)
  const resubscribedAt = Date.now()
  const after = await checkRecovered(t, load, alice, received, resubscribedAt)
  t.ok(after.every((p) => p.online === true), 'each of them told the publisher that alice was online (PUBLISH\'s reply on the new master)')
  // Presence follows the master too: rewritten at the next heartbeat if the replica lacked it.
  await until('presence on the new master', async () => {
    try {
      return (await b.app.notify.presence({ user: 'alice' })).users.alice.connections === 1
    } catch {
      return false
    }
  }, 20_000)
  t.same(await b.app.notify.presence({ user: 'alice' }), { users: { alice: { connections: 1, streams: ['reward'] } } }, 'presence through Sentinel after the failover')
  const acked = load.log.filter((p) => p.status === 202).map((p) => p.id!)
  const kept = new Set((await promoted.xrange(`notify:history:{${topic}}`, '-', '+')).map(([id]) => id))
  t.comment(`${acked.filter((id) => compareMessageIds(id, beforeKill.id) > 0 && compareMessageIds(id, after[0].id!) < 0 && !kept.has(id)).length} accepted messages lost with the master`)
  // Tickets work again, on either instance.
  const open = async (): Promise<Client> => (await connect(t, `${b.ws}/ws?ticket=${await ticket(a.http, jwt)}`)).client
  await checkResume(t, open, 'reward', beforeKill.id, after)
  t.same(failures, [], 'no unhandled error in the process')
})

t.test('Sentinel options are checked at registration', async (t) => {
  for (const redis of [
    { sentinels: [], name: 'mymaster' },
    { sentinels: 'localhost:26379', name: 'mymaster' },
    { sentinels: [{ host: 'localhost', port: 0 }], name: 'mymaster' },
    { sentinels: [{ host: 1, port: 26379 }], name: 'mymaster' },
    { sentinels: [null], name: 'mymaster' },
    { sentinels: [{ host: 'localhost', port: 26379 }] },
    { sentinels: [{ host: 'localhost', port: 26379 }], name: '' }
  ]) {
    t.match(await registrationError({ redis }), { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(redis))
  }
})

t.test('REDIS_SENTINELS is a host:port list, REDIS_SENTINEL_NAME defaults to mymaster, and one Redis mode at a time', async (t) => {
  const { config } = loadConfig({ REDIS_SENTINELS: '10.0.0.1:26379, sentinel-2:26380' })
  t.same(config.redisSentinels, [{ host: '10.0.0.1', port: 26379 }, { host: 'sentinel-2', port: 26380 }])
  t.equal(config.redisSentinelName, 'mymaster')
  t.equal(loadConfig({ REDIS_SENTINELS: 'h:1', REDIS_SENTINEL_NAME: 'orders' }).config.redisSentinelName, 'orders')
  for (const bad of ['h', 'h:0', 'h:65536', ':1', 'h:1,,h:2', 'h:x']) {
    t.throws(() => loadConfig({ REDIS_SENTINELS: bad }), /REDIS_SENTINELS must be a comma-separated host:port list/, bad)
  }
  t.throws(() => loadConfig({ REDIS_SENTINELS: 'h:1', REDIS_URL: 'redis://h' }), /one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER/)
  t.throws(() => loadConfig({ REDIS_SENTINELS: 'h:1', REDIS_CLUSTER: 'h:2' }), /one of/)
})
