import t from 'tap'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import fastifyRedis from '@fastify/redis'
import { MemoryTicketStore, RedisTicketStore } from '../plugins/index.js'
import { ticketStoreSuite } from './abstract/ticket-store.js'
import { scanKeys, sharedRedis } from './redis-server.js'

t.test('MemoryTicketStore', async (t) => {
  ticketStoreSuite({
    test: t.test.bind(t),
    async builder () {
      let now = 1_000_000
      return {
        store: new MemoryTicketStore({ now: () => now }),
        async elapse (seconds) { now += seconds * 1000 }
      }
    }
  })
})

/** Lets time pass in Redis by taking `seconds` off every key's remaining TTL under `prefix`. */
async function elapse (redis: Redis, prefix: string, seconds: number): Promise<void> {
  for (const key of await scanKeys(redis, prefix)) {
    const left = await redis.pttl(key) - seconds * 1000
    if (left > 0) await redis.pexpire(key, left)
    else await redis.del(key)
  }
}

t.test('RedisTicketStore', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const redis = new Redis(url)
  t.teardown(() => redis.quit())
  let stores = 0

  ticketStoreSuite({
    test: t.test.bind(t),
    async builder () {
      const keyPrefix = `${prefix}:${++stores}:ticket:`
      return { store: new RedisTicketStore({ client: redis, keyPrefix }), elapse: (seconds) => elapse(redis, keyPrefix, seconds) }
    }
  })

  t.test('keeps a ticket under its prefix with SET EX, as JSON of the record alone', async (t) => {
    const keyPrefix = `${prefix}:keys:`
    const store = new RedisTicketStore({ client: redis, keyPrefix })
    const ticket = 'k'.repeat(43)
    await store.issue(ticket, { user: 'alice', expiresAt: 42, extra: 'dropped' } as never, 30)
    t.same(await scanKeys(redis, keyPrefix), [`${keyPrefix}${ticket}`])
    t.same(JSON.parse((await redis.get(`${keyPrefix}${ticket}`))!), { user: 'alice', expiresAt: 42 })
    const ttl = await redis.pttl(`${keyPrefix}${ticket}`)
    t.ok(ttl > 29_000 && ttl <= 30_000, `TTL is 30 s (${ttl} ms left)`)
    await store.redeem(ticket)
    t.same(await scanKeys(redis, keyPrefix), [], 'redeeming deletes it')
  })

  t.test('never replaces a ticket that exists (NX)', async (t) => {
    const store = new RedisTicketStore({ client: redis, keyPrefix: `${prefix}:nx:` })
    const ticket = 'n'.repeat(43)
    await store.issue(ticket, { user: 'alice', expiresAt: 1 }, 30)
    await t.rejects(store.issue(ticket, { user: 'mallory', expiresAt: 2 }, 30), { message: 'ticket already exists' })
    t.same(await store.redeem(ticket), { user: 'alice', expiresAt: 1 })
  })

  t.test("works on @fastify/redis's ioredis 6 client", async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(fastifyRedis, { url })
    const store = new RedisTicketStore({ client: app.redis, keyPrefix: `${prefix}:v6:` })
    const ticket = 'v'.repeat(43)
    await store.issue(ticket, { user: 'alice', expiresAt: 1 }, 30)
    t.same(await store.redeem(ticket), { user: 'alice', expiresAt: 1 })
  })

  t.test('rejects a client that is not an ioredis client', async (t) => {
    t.throws(() => new RedisTicketStore({ client: {} as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
    t.throws(() => new RedisTicketStore({ client: redis, keyPrefix: 42 as never }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  })
})
