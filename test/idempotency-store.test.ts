import t from 'tap'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import fastifyRedis from '@fastify/redis'
import { MemoryIdempotencyStore, RedisIdempotencyStore } from '../plugins/index.js'
import { idempotencyStoreSuite } from './abstract/idempotency-store.js'
import { elapseKeys as elapse, redisServer, scanKeys, sharedRedis } from './redis-server.js'

t.test('MemoryIdempotencyStore', async (t) => {
  idempotencyStoreSuite({
    test: t.test.bind(t),
    async builder () {
      let now = 1_000_000
      return { store: new MemoryIdempotencyStore({ now: () => now }), async elapse (seconds) { now += seconds * 1000 } }
    }
  })
})

t.test('the memory store is bounded: the oldest keys go first, expired ones are swept', async (t) => {
  let now = 0
  const store = new MemoryIdempotencyStore({ maxKeys: 3, now: () => now })
  for (let i = 0; i < 10; i++) await store.claim(`k${i}`, 't', 10)
  t.equal(store.size, 3)
  t.equal(await store.claim('k9', 't', 10) !== null, true, 'the newest is kept')
  now += 11_000
  await store.claim('fresh', 't', 10)
  t.equal(store.size, 1, 'expired markers are swept on the next write')
})

t.test('the memory store refuses bad options with a code', async (t) => {
  for (const maxKeys of [0, -1, 1.5, '10']) {
    t.throws(() => new MemoryIdempotencyStore({ maxKeys: maxKeys as number }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  }
  t.throws(() => new MemoryIdempotencyStore({ now: 42 as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('RedisIdempotencyStore', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const redis = new Redis(url)
  t.teardown(() => redis.quit())
  let stores = 0

  idempotencyStoreSuite({
    test: t.test.bind(t),
    async builder () {
      const keyPrefix = `${prefix}:${++stores}:idem:`
      return { store: new RedisIdempotencyStore({ client: redis, keyPrefix }), elapse: (seconds) => elapse(redis, keyPrefix, seconds) }
    }
  })

  t.test('keeps each key under its prefix with a TTL: short while pending, long once done', async (t) => {
    const keyPrefix = `${prefix}:ttl:`
    const store = new RedisIdempotencyStore({ client: redis, keyPrefix })
    await store.claim('k', 'tok', 10)
    t.same(await scanKeys(redis, keyPrefix), [`${keyPrefix}k`])
    t.ok(await redis.ttl(`${keyPrefix}k`) <= 10)
    await store.complete('k', { id: '1-0' }, 600)
    t.ok(await redis.ttl(`${keyPrefix}k`) > 590)
  })

  t.test("works on @fastify/redis's ioredis 6 client", async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyRedis, { url })
    const store = new RedisIdempotencyStore({ client: app.redis, keyPrefix: `${prefix}:v6:` })
    t.equal(await store.claim('k', 'a', 10), null)
    t.same(await store.claim('k', 'b', 10), { state: 'pending' })
  })

  t.test('sends its scripts by hash, loads them again after SCRIPT FLUSH, and as text to a client without evalsha', async (t) => {
    // A private server: its command counts are this test's alone, and flushing its scripts disturbs no one.
    const server = await redisServer(t)
    const own = new Redis(server.url)
    t.teardown(() => own.quit())
    const calls = async (): Promise<Record<string, number>> => Object.fromEntries(
      [...(await own.info('commandstats')).matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)].map(([, name, n]) => [name, Number(n)]))
    const store = new RedisIdempotencyStore({ client: own, keyPrefix: 'sha:' })
    // Each script's first call loads it (EVALSHA answers NOSCRIPT, then EVAL).
    await store.claim('k', 'a', 10)
    await store.complete('z', { id: '0-1' }, 600)
    await own.config('RESETSTAT')
    // Claims made together, as a batch of JetStream messages makes them: one write, each answered.
    t.same(await Promise.all(['k', 'l', 'm'].map((key) => store.claim(key, 'b', 10))), [{ state: 'pending' }, null, null])
    await store.complete('l', { id: '1-0' }, 600)
    t.same(await calls(), { evalsha: 4 }, 'by hash only')
    await own.script('FLUSH')
    await own.config('RESETSTAT')
    t.same(await store.claim('l', 'c', 10), { state: 'done', result: { id: '1-0' } }, 'answered after the flush')
    t.same(await calls(), { evalsha: 1, eval: 1 }, 'loaded again by EVAL')
    const textOnly = new RedisIdempotencyStore({ client: { eval: (...args: Parameters<Redis['eval']>) => own.eval(...args) }, keyPrefix: 'text:' })
    await own.config('RESETSTAT')
    t.equal(await textOnly.claim('k', 'a', 10), null)
    t.same(await calls(), { eval: 1 }, 'as text without evalsha')
  })

  t.test('rejects a client that is not an ioredis client', async (t) => {
    t.throws(() => new RedisIdempotencyStore({ client: {} as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
    t.throws(() => new RedisIdempotencyStore({ client: redis, keyPrefix: 42 as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  })
})
