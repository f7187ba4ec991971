import t from 'tap'
import { Redis } from 'ioredis'
import { MemoryRevocationStore, RedisRevocationStore, RevocationList } from '../plugins/index.js'
import { revocationStoreSuite } from './abstract/revocation-store.js'
import { redisServer, sharedRedis } from './redis-server.js'

t.test('MemoryRevocationStore', async (t) => {
  revocationStoreSuite({ test: t.test.bind(t), async builder () { return { store: new MemoryRevocationStore(), async elapse () {} } } })
})

t.test('RedisRevocationStore', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const redis = new Redis(url)
  t.teardown(() => redis.quit())
  let stores = 0
  revocationStoreSuite({
    test: t.test.bind(t),
    async builder (t) {
      const key = `${prefix}:${++stores}:revoked`
      t.teardown(() => redis.del(key))
      return { store: new RedisRevocationStore({ client: redis, key }), async elapse () {} }
    }
  })

  t.test('one sorted set that expires with its last entry', async (t) => {
    const key = `${prefix}:keyed:revoked`
    t.teardown(() => redis.del(key))
    const store = new RedisRevocationStore({ client: redis, key })
    await store.add({ jti: 'a', expiresAt: Date.now() + 5000 })
    await store.add({ user: 'u', before: 1, expiresAt: Date.now() + 20_000 })
    t.equal(await redis.type(key), 'zset')
    const ttl = await redis.pttl(key)
    t.ok(ttl > 15_000 && ttl <= 20_000, `pttl ${ttl}`)
  })

  t.test('refuses a client that is not one and a bad key', async (t) => {
    t.throws(() => new RedisRevocationStore({ client: {} as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
    t.throws(() => new RedisRevocationStore({ client: redis, key: '' }), { code: 'FST_NOTIFY_INVALID_OPTION' })
    t.equal(new RedisRevocationStore({ client: redis }).key, 'notify:revoked')
  })
})

t.test('a Redis that does not answer in time fails the call', async (t) => {
  const server = await redisServer(t)
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  t.teardown(() => redis.disconnect())
  await redis.ping()
  const store = new RedisRevocationStore({ client: redis, key: 'k', timeout: 100 })
  server.pause()
  t.teardown(() => server.resume())
  await t.rejects(store.list(), /within 100 ms/)
})

t.test('RevocationList: by jti, by user and issue time, expiry on its clock', async (t) => {
  let now = 1_000_000
  const list = new RevocationList(() => now)
  const principal = (user: string | null, claims: Record<string, unknown>) => ({ user, expiresAt: null, claims })
  t.equal(list.revoked(principal('alice', { jti: 'a' })), false, 'empty')
  list.add({ jti: 'a', expiresAt: now + 1000 })
  list.add({ jti: 'old', expiresAt: now - 1 })
  list.add({ user: 'bob', before: 500_000, expiresAt: now + 2000 })
  list.add({ user: 'bob', before: 400_000, expiresAt: now + 1000 })
  t.equal(list.size, 2, 'an expired entry is not added; a user keeps the latest before')
  t.equal(list.revoked(principal('alice', { jti: 'a' })), true)
  t.equal(list.revoked(principal(null, { jti: 'a' })), false, 'anonymous')
  t.equal(list.revoked(principal('bob', { iat: 499 })), true, 'issued before')
  t.equal(list.revoked(principal('bob', { iat: 500 })), false, 'issued at or after')
  t.equal(list.revoked(principal('bob', {})), true, 'no iat')
  t.equal(list.revoked(principal('carol', {})), false)
  now += 1500
  t.equal(list.revoked(principal('alice', { jti: 'a' })), false, 'past its expiry')
  t.same(list.entries(), [{ user: 'bob', before: 500_000, expiresAt: 1_002_000 }])
  now += 1000
  t.equal(list.revoked(principal('bob', {})), false)
  list.sweep()
  t.equal(list.size, 0)
})
