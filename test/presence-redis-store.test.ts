import { once } from 'node:events'
import t from 'tap'
import { Redis } from 'ioredis'
import { RedisPresenceStore, type RedisPresenceStoreOptions } from '../plugins/index.js'
import { registrationError } from './helpers.js'
import { redisServer, scanKeys, until } from './redis-server.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function client (t: Test, url: string): Promise<Redis> {
  // As the edge builds it: no offline queue, so a write while Redis is away fails at once.
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  redis.on('error', () => {})
  t.teardown(() => redis.disconnect())
  await once(redis, 'ready')
  return redis
}

function store (t: Test, opts: RedisPresenceStoreOptions): RedisPresenceStore {
  const built = new RedisPresenceStore(opts)
  t.teardown(() => built.close())
  return built
}

t.test('refuses options it cannot use, with a coded error', async (t) => {
  const server = await redisServer(t)
  const redis = await client(t, server.url)
  const bad: Array<[string, unknown]> = [
    ['no client', {}],
    ['a client without evalsha', { client: { eval: () => {} } }],
    ['an empty keyPrefix', { client: redis, keyPrefix: '' }],
    ['a ttl under twice the heartbeat', { client: redis, heartbeatInterval: 1000, ttl: 1500 }],
    ['a heartbeat that is not a positive integer', { client: redis, heartbeatInterval: 0 }],
    ['a write window that is not a positive integer', { client: redis, writeWindow: 0.5 }],
    ['a write window over a second', { client: redis, writeWindow: 1001 }],
    ['a write window over the heartbeat', { client: redis, heartbeatInterval: 100, ttl: 1000, writeWindow: 200 }]
  ]
  for (const [what, opts] of bad) {
    t.throws(() => new RedisPresenceStore(opts as RedisPresenceStoreOptions), { code: 'FST_NOTIFY_INVALID_OPTION' }, what)
  }
  const err = await registrationError({ redis: server.url, presence: { heartbeatInterval: 1000, ttl: 1000 } })
  t.equal(err?.code, 'FST_NOTIFY_INVALID_OPTION', 'through the umbrella too')
})

t.test('writes a share larger than one script call, and answers from it', async (t) => {
  const server = await redisServer(t)
  const presence = store(t, { client: await client(t, server.url), keyPrefix: 'big' })
  for (let i = 0; i < 1500; i++) {
    presence.tracker.connected(`user${i}`)
    presence.tracker.subscribed(`user${i}`, 'promotional', true)
  }
  presence.tracker.subscribed(null, 'promotional', true)
  await presence.flushed()
  t.same(await presence.users(['user0', 'user1499', 'nobody']), [
    { connections: 1, streams: ['promotional'] },
    { connections: 1, streams: ['promotional'] },
    { connections: 0, streams: [] }
  ])
  t.same(await presence.stream('promotional'), { connections: 1501, users: 1500 })
})

t.test('changes of several event-loop turns within the write window go out in one script call, unasked', async (t) => {
  const server = await redisServer(t)
  const redis = await client(t, server.url)
  // A wide window: five event-loop turns fit in it however busy the machine is.
  const presence = store(t, { client: redis, keyPrefix: 'burst', writeWindow: 500 })
  await presence.flushed()
  const calls = async (): Promise<number> => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0)
  const before = await calls()
  for (let i = 0; i < 5; i++) {
    presence.tracker.connected(`user${i}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await until('the five users written', async () => await redis.hlen(`{burst}:${presence.instance}:u`) === 5)
  t.equal(await calls() - before, 1, 'one script call for five turns of changes')
})

t.test('while Redis is away: queries answer 503, writes are reported, and the share is rewritten once it is back', async (t) => {
  const server = await redisServer(t)
  const errors: Error[] = []
  const presence = store(t, { client: await client(t, server.url), heartbeatInterval: 100, ttl: 1000, timeout: 300, onError: (err) => errors.push(err) })
  presence.tracker.connected('alice')
  presence.tracker.subscribed('alice', 'order', false)
  await presence.flushed()
  t.same(await presence.users(['alice']), [{ connections: 1, streams: ['order'] }])

  await server.stop()
  await t.rejects(presence.users(['alice']), { code: 'FST_NOTIFY_PRESENCE_UNAVAILABLE', statusCode: 503 })
  await t.rejects(presence.stream('promotional'), { code: 'FST_NOTIFY_PRESENCE_UNAVAILABLE' })
  presence.tracker.connected('bob')
  await presence.flushed()
  t.ok(errors.length > 0, 'the failed write is reported')

  await server.start()
  await until('the share to be rewritten', async () => {
    try {
      const [alice, bob] = await presence.users(['alice', 'bob'])
      return alice.connections === 1 && bob.connections === 1
    } catch {
      return false
    }
  }, 10_000)
  t.pass('alice, and bob who came during the outage, are back without any event')
})

t.test('a close while Redis is away ends within its timeout and reports it', async (t) => {
  const server = await redisServer(t)
  const errors: Error[] = []
  const presence = new RedisPresenceStore({ client: await client(t, server.url), timeout: 200, onError: (err) => errors.push(err) })
  presence.tracker.connected('alice')
  await presence.flushed()
  server.pause()
  t.teardown(() => server.resume())
  await presence.close()
  await presence.close()
  t.ok(errors.some((err) => (err as Error & { code?: string }).code === 'FST_NOTIFY_PRESENCE_UNAVAILABLE'), 'the timed-out leave is reported')
})

t.test('a clean close leaves no key behind, and another instance keeps its own', async (t) => {
  const server = await redisServer(t)
  const redis = await client(t, server.url)
  const [a, b] = [store(t, { client: redis }), store(t, { client: redis })]
  a.tracker.connected('alice')
  a.tracker.subscribed('alice', 'promotional', true)
  b.tracker.connected('alice')
  await Promise.all([a.flushed(), b.flushed()])
  t.same(await b.users(['alice']), [{ connections: 2, streams: ['promotional'] }], 'one user on two instances')
  await a.close()
  t.same(await b.users(['alice']), [{ connections: 1, streams: [] }])
  t.ok((await scanKeys(redis, '{notify:presence}')).every((key) => !key.includes(a.instance)), 'none of the closed instance\'s keys')
})
