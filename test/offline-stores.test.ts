import t from 'tap'
import { Redis } from 'ioredis'
import { MemoryDeliveryClaims, MemoryPushSubscriptionStore, RedisDeliveryClaims, RedisPushSubscriptionStore } from '../plugins/index.js'
import { deliveryClaimStoreSuite, pushSubscriptionStoreSuite } from './abstract/offline-stores.js'
import { elapseKeys as elapse, scanKeys, sharedRedis } from './redis-server.js'

t.test('MemoryPushSubscriptionStore', async (t) => {
  pushSubscriptionStoreSuite({ test: t.test.bind(t), async builder () { return { store: new MemoryPushSubscriptionStore(), async elapse () {} } } })
})

t.test('MemoryDeliveryClaims', async (t) => {
  deliveryClaimStoreSuite({
    test: t.test.bind(t),
    async builder () {
      let now = 1_000_000
      return { store: new MemoryDeliveryClaims({ now: () => now }), async elapse (seconds) { now += seconds * 1000 } }
    }
  })

  t.test('is bounded: the oldest claims go first, expired ones are swept', async (t) => {
    let now = 0
    const claims = new MemoryDeliveryClaims({ maxKeys: 3, now: () => now })
    for (let i = 0; i < 10; i++) await claims.claim(`k${i}`, 10)
    t.equal(claims.size, 3)
    t.equal(await claims.claim('k9', 10), false, 'the newest is kept')
    now += 11_000
    await claims.claim('fresh', 10)
    t.equal(claims.size, 1)
  })

  t.test('refuses bad options with a code', async (t) => {
    t.throws(() => new MemoryDeliveryClaims({ maxKeys: 0 }), { code: 'FST_NOTIFY_INVALID_OPTION' })
    t.throws(() => new MemoryDeliveryClaims({ now: 1 as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  })
})

t.test('on Redis', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const redis = new Redis(url)
  t.teardown(async () => {
    for (const key of await scanKeys(redis, prefix)) await redis.del(key)
    await redis.quit()
  })
  let stores = 0

  t.test('RedisPushSubscriptionStore', async (t) => {
    pushSubscriptionStoreSuite({
      test: t.test.bind(t),
      async builder () {
        const keyPrefix = `${prefix}:${++stores}:push:`
        return { store: new RedisPushSubscriptionStore({ client: redis, keyPrefix }), elapse: (seconds) => elapse(redis, keyPrefix, seconds) }
      }
    })
  })

  t.test('RedisDeliveryClaims', async (t) => {
    deliveryClaimStoreSuite({
      test: t.test.bind(t),
      async builder () {
        const keyPrefix = `${prefix}:${++stores}:offline:`
        return { store: new RedisDeliveryClaims({ client: redis, keyPrefix }), elapse: (seconds) => elapse(redis, keyPrefix, seconds) }
      }
    })
  })

  t.test("keeps a user's two keys on one hash tag, and claims with a TTL", async (t) => {
    const keyPrefix = `${prefix}:tags:`
    await new RedisPushSubscriptionStore({ client: redis, keyPrefix }).add('bob', { endpoint: 'https://p/1', keys: { p256dh: 'k', auth: 'a' } }, 5)
    t.same((await scanKeys(redis, keyPrefix)).sort(), [`${keyPrefix}{bob}`, `${keyPrefix}{bob}:order`])
    await new RedisDeliveryClaims({ client: redis, keyPrefix }).claim('c', 30)
    t.ok(await redis.ttl(`${keyPrefix}c`) > 0)
  })

  t.test('refuses a client that is not an ioredis client, and a bad prefix', async (t) => {
    for (const Store of [RedisPushSubscriptionStore, RedisDeliveryClaims]) {
      t.throws(() => new Store({ client: {} as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
      t.throws(() => new Store({ client: redis, keyPrefix: 1 as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
    }
    t.equal(new RedisDeliveryClaims({ client: redis }).keyPrefix, 'notify:offline:')
    t.equal(new RedisPushSubscriptionStore({ client: redis }).keyPrefix, 'notify:push:')
  })
})
