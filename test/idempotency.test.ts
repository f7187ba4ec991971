import t from 'tap'
import { MemoryIdempotencyStore, RedisIdempotencyStore, type IdempotencyStore } from '../plugins/index.js'
import { Redis } from 'ioredis'
import { API_KEY, build, connectUser, registrationError } from './helpers.js'
import { sharedRedis } from './redis-server.js'

const data = { orderId: '1', status: 'placed' }

async function post (http: string, body: unknown, key?: string): Promise<{ status: number, replayed: boolean, body: Record<string, any> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-api-key': API_KEY }
  if (key !== undefined) headers['idempotency-key'] = key
  const res = await fetch(`${http}/notifications`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: res.status, replayed: res.headers.get('idempotent-replayed') === 'true', body: await res.json() as Record<string, any> }
}

t.test('a retried Idempotency-Key answers the first ids and publishes nothing', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const first = await post(edge.http, { stream: 'order', user: 'alice', data }, 'order-1-placed')
  const again = await post(edge.http, { stream: 'order', user: 'alice', data }, 'order-1-placed')
  t.equal(first.status, 202)
  t.notOk(first.replayed)
  t.equal(again.status, 202)
  t.ok(again.replayed, 'the replay says so in Idempotent-Replayed')
  t.same(again.body, first.body)
  const other = await post(edge.http, { stream: 'order', user: 'alice', data }, 'order-1-paid')
  t.not(other.body.id, first.body.id, 'another key publishes')
  t.equal((await alice.event('message')).id, first.body.id)
  t.equal((await alice.event('message')).id, other.body.id)
  t.same(alice.messages(), [], 'the retry was never shown')
})

t.test('twenty concurrent duplicates publish once and all answer the same ids', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const answers = await Promise.all(Array.from({ length: 20 }, () =>
    post(edge.http, { stream: 'order', users: ['alice'], data }, 'burst')))
  t.same(new Set(answers.map((a) => a.status)), new Set([202]))
  t.equal(new Set(answers.map((a) => JSON.stringify(a.body))).size, 1)
  t.equal(answers.filter((a) => !a.replayed).length, 1, 'exactly one published')
  await alice.event('message')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'delivered once')
})

t.test('a publish that fails frees its key, so a corrected retry publishes', async (t) => {
  const edge = await build(t)
  const bad = await post(edge.http, { stream: 'order', user: 'alice', data: { orderId: '1' } }, 'fix-me')
  t.equal(bad.status, 400)
  t.equal(bad.body.code, 'FST_NOTIFY_INVALID_DATA')
  const good = await post(edge.http, { stream: 'order', user: 'alice', data }, 'fix-me')
  t.equal(good.status, 202)
  t.notOk(good.replayed)
})

t.test('a bad Idempotency-Key answers 400 with a code and publishes nothing', async (t) => {
  const edge = await build(t)
  for (const key of ['', 'k'.repeat(129)]) {
    const res = await post(edge.http, { stream: 'promotional', data }, key)
    t.equal(res.status, 400)
    t.equal(res.body.code, 'FST_NOTIFY_BAD_IDEMPOTENCY_KEY')
  }
  t.equal((await post(edge.http, { stream: 'promotional', data }, 'k'.repeat(128))).status, 202, '128 characters are fine')
  await t.rejects(edge.app.notifyIdempotency.publish('tab\there', { stream: 'promotional', data }), { code: 'FST_NOTIFY_BAD_IDEMPOTENCY_KEY' })
})

t.test('a duplicate whose first publish never finishes answers 409 once the marker would expire', async (t) => {
  const store = new MemoryIdempotencyStore()
  await store.claim('stuck', 'a-crashed-holder', 60)
  const edge = await build(t, { idempotency: { store, pendingTtl: 1 } })
  const res = await post(edge.http, { stream: 'promotional', data }, 'stuck')
  t.equal(res.status, 409)
  t.equal(res.body.code, 'FST_NOTIFY_IDEMPOTENCY_IN_PROGRESS')
})

t.test('with Redis, a key publishes once across instances', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const a = await build(t, { redis: url, topicPrefix: prefix })
  const b = await build(t, { redis: url, topicPrefix: prefix })
  t.type(a.app.notifyIdempotency.store, RedisIdempotencyStore)
  const alice = await connectUser(t, b, 'alice')
  await alice.subscribe('order')
  const first = await post(a.http, { stream: 'order', user: 'alice', data }, 'shared-key')
  const again = await post(b.http, { stream: 'order', user: 'alice', data }, 'shared-key')
  t.same(again.body, first.body)
  t.ok(again.replayed)
  t.equal((await alice.event('message')).id, first.body.id)
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [])
})

t.test('an unreachable idempotency store answers 503 and publishes nothing', async (t) => {
  const dead = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, retryStrategy: () => null })
  dead.on('error', () => {})
  t.teardown(() => dead.disconnect())
  const edge = await build(t, { idempotency: { store: new RedisIdempotencyStore({ client: dead }) } })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const res = await post(edge.http, { stream: 'order', user: 'alice', data }, 'k1')
  t.equal(res.status, 503)
  t.equal(res.body.code, 'FST_NOTIFY_IDEMPOTENCY_STORE_UNAVAILABLE')
  t.equal((await post(edge.http, { stream: 'order', user: 'alice', data })).status, 202, 'without a key it does not need the store')
  await alice.event('message')
})

t.test('a store that never answers gives 503 within the timeout', async (t) => {
  const silent: IdempotencyStore = {
    claim: () => new Promise(() => {}),
    complete: async () => {},
    release: async () => {},
    extend: async () => {}
  }
  const edge = await build(t, { idempotency: { store: silent, timeout: 50 } })
  const res = await post(edge.http, { stream: 'promotional', data }, 'k')
  t.equal(res.status, 503)
  t.equal(res.body.code, 'FST_NOTIFY_IDEMPOTENCY_STORE_UNAVAILABLE')
})

t.test('a store that stops answering after the claim does not hold up the publish\'s answer', async (t) => {
  const stuck: IdempotencyStore = {
    claim: async () => null,
    complete: () => new Promise(() => {}),
    release: () => new Promise(() => {}),
    extend: () => new Promise(() => {})
  }
  const edge = await build(t, { idempotency: { store: stuck, timeout: 50 } })
  t.equal((await post(edge.http, { stream: 'promotional', data }, 'k')).status, 202)
  t.equal((await post(edge.http, { stream: 'nope', data }, 'k')).status, 400)
})

t.test('a store that fails after the publish still answers the publish', async (t) => {
  const failing: IdempotencyStore = {
    claim: async () => null,
    complete: async () => { throw new Error('gone') },
    release: async () => { throw new Error('gone') },
    extend: async () => { throw new Error('gone') }
  }
  const edge = await build(t, { idempotency: { store: failing } })
  t.equal((await post(edge.http, { stream: 'promotional', data }, 'k')).status, 202)
  t.equal((await post(edge.http, { stream: 'nope', data }, 'k')).status, 400, 'a failed release keeps the publish error')
})

t.test('idempotency options are validated at registration', async (t) => {
  for (const idempotency of [{ ttl: 0 }, { pendingTtl: -1 }, { timeout: 1.5 }, { store: {} }]) {
    t.equal((await registrationError({ idempotency }))?.code, 'FST_NOTIFY_INVALID_OPTION', JSON.stringify(idempotency))
  }
})
