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

const record = { user: 'alice', expiresAt: Number.MAX_SAFE_INTEGER }

t.test('a ticket expires after its ttl, on the store\'s clock', async (t) => {
  let now = 1_000_000
  const store = new MemoryTicketStore({ now: () => now })
  await store.issue('early', record, 30)
  await store.issue('late', record, 30)
  now += 29_999
  t.same(await store.redeem('early'), record, 'alive 1 ms before the ttl')
  now += 1
  t.equal(await store.redeem('late'), null, 'gone at the ttl')
  t.equal(store.size, 0, 'an expired ticket is dropped when it is looked up')
})

t.test('issuing sweeps expired tickets, so unused ones do not pile up', async (t) => {
  let now = 0
  const store = new MemoryTicketStore({ now: () => now })
  for (let i = 0; i < 100; i++) await store.issue(`old-${i}`, record, 1)
  t.equal(store.size, 100)
  now += 1000
  await store.issue('new', record, 1)
  t.equal(store.size, 1)
  t.equal(store.evicted, 0, 'expired tickets are not counted as evicted')
})

t.test('a flood of unused tickets is bounded: the oldest are evicted', async (t) => {
  const store = new MemoryTicketStore({ maxTickets: 3 })
  for (let i = 0; i < 10; i++) await store.issue(`t${i}`, { ...record, user: `u${i}` }, 30)
  t.equal(store.size, 3)
  t.equal(store.evicted, 7)
  t.equal(await store.redeem('t6'), null, 'the oldest went first')
  t.same(await store.redeem('t7'), { ...record, user: 'u7' })
  t.same(await store.redeem('t9'), { ...record, user: 'u9' })
})

t.test('a store of one still works', async (t) => {
  const store = new MemoryTicketStore({ maxTickets: 1 })
  await store.issue('a', record, 30)
  await store.issue('b', record, 30)
  t.equal(await store.redeem('a'), null)
  t.same(await store.redeem('b'), record)
})

t.test('maxTickets must be a positive integer', async (t) => {
  for (const maxTickets of [0, -1, 1.5, Number.NaN, '10']) {
    t.throws(() => new MemoryTicketStore({ maxTickets: maxTickets as number }), { code: 'FST_NOTIFY_INVALID_OPTION' }, String(maxTickets))
  }
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
