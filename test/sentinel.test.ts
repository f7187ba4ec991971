// Redis through Sentinel: master, replica and three sentinels as real processes; the master is
// SIGKILLed while a private stream runs at about 500 messages/s across two example-app instances.
import t from 'tap'
import { Redis } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { compareMessageIds } from '../plugins/index.js'
import { API_KEY, SECRET, connect, publish, registrationError, ticket, urls, watchProcessFailures, type Client, type Frame } from './helpers.js'
import { until } from './redis-server.js'
import { redisSentinel } from './redis-sentinel.js'

type Test = { teardown: (fn: () => unknown) => void }
const PER_SECOND = 500

async function exampleApp (t: Test, env: Record<string, string>): Promise<{ app: FastifyInstance, http: string, ws: string }> {
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ...env })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

interface Publish { n: number, status: number, id?: string, online?: boolean, ms: number, startedAt: number }

/** Publishes numbered messages to alice's `reward` stream at about PER_SECOND, one at a time, until `stop()`. */
function publisher (http: string): { log: Publish[], stop: () => Promise<void> } {
  const log: Publish[] = []
  const state = { stopped: false }
  const run = (async () => {
    const start = Date.now()
    for (let n = 0; !state.stopped; n++) {
      const due = start + n * 1000 / PER_SECOND - Date.now()
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
      const startedAt = Date.now()
      const res = await publish(http, { stream: 'reward', user: 'alice', data: { n } })
      log.push({ n, status: res.status, id: res.body.id as string | undefined, online: res.body.online as boolean | undefined, ms: Date.now() - startedAt, startedAt })
    }
  })()
  return { log, stop: async () => { state.stopped = true; await run } }
}

async function receiveUntil (client: Client, received: Frame[], id: string): Promise<void> {
  while (received.length === 0 || compareMessageIds(received[received.length - 1].id, id) < 0) {
    received.push(await client.next((f) => f.event === 'message', 10_000))
  }
}

t.test('through Sentinel, a SIGKILLed master under 500 msg/s: sockets stay open, publishes answer 202 or 503 in time, delivery and tickets come back, resume reports the failover as a gap', async (t) => {
  const failures = watchProcessFailures(t)
  const sentinel = await redisSentinel(t)
  const env = { REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name }
  const [a, b] = [await exampleApp(t, env), await exampleApp(t, env)]
  const jwt = a.app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' })
  const { client: alice } = await connect(t, `${a.ws}/ws?ticket=${await ticket(a.http, jwt)}`)
  await alice.subscribe('reward')
  const topic = a.app.notify.streams.get('reward')!.topic('alice')

  const load = publisher(b.http)
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
  await until('300 publishes accepted after the re-subscription', () => load.log.filter((p) => p.startedAt >= resubscribedAt && p.status === 202).length >= 300, 30_000)
  await load.stop()

  const after = load.log.filter((p) => p.startedAt >= resubscribedAt && p.status === 202)
  await receiveUntil(alice, received, after[after.length - 1].id!)
  t.equal(alice.closeCode, null, 'the socket stayed open')
  const live = received.filter((m) => compareMessageIds(m.id, after[0].id!) >= 0)
  t.same(live.map((m) => m.id), after.map((p) => p.id), 'every message accepted after the failover arrived live, in order, once')
  t.ok(received.every((m, i) => i === 0 || compareMessageIds(received[i - 1].id, m.id) < 0), 'ids only increase on the live socket')
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

  const statuses = new Set(load.log.map((p) => p.status))
  t.ok([...statuses].every((status) => status === 202 || status === 503), `every publish answered 202 or 503 (${[...statuses]})`)
  const slowest = Math.max(...load.log.map((p) => p.ms))
  t.ok(slowest < 1500, `no publish took 1.5 s or more (slowest ${slowest} ms)`)
  const refused = load.log.filter((p) => p.status === 503).length
  t.comment(`${load.log.length} publishes, ${refused} answered 503 during the failover, slowest ${slowest} ms`)

  // Tickets work again, on either instance.
  const onB = (await connect(t, `${b.ws}/ws?ticket=${await ticket(b.http, jwt)}`)).client
  const acked = load.log.filter((p) => p.status === 202).map((p) => p.id!)
  const kept = new Set((await promoted.xrange(`notify:history:{${topic}}`, '-', '+')).map(([id]) => id))
  t.comment(`${acked.filter((id) => compareMessageIds(id, beforeKill.id) > 0 && compareMessageIds(id, after[0].id!) < 0 && !kept.has(id)).length} accepted messages lost with the master`)
  t.same((await onB.subscribe({ stream: 'reward', since: beforeKill.id })).gaps, ['reward'], 'a resume from before the failover is told of a gap')
  const resumed = (await connect(t, `${a.ws}/ws?ticket=${await ticket(a.http, jwt)}`)).client
  const since = after[after.length - 51].id!
  t.same((await resumed.subscribe({ stream: 'reward', since })).gaps, [], 'a resume from after the failover has none')
  const replay: Frame[] = []
  await receiveUntil(resumed, replay, after[after.length - 1].id!)
  t.same(replay.map((m) => m.id), after.slice(-50).map((p) => p.id), 'and gets every message after since, in order')
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
