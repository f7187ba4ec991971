import { readFileSync } from 'node:fs'
import t from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { insertNotification, notifyIdempotency, notifyOutbox, notifyPublisher, outboxMigration, RedisIdempotencyStore } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, connectUser, registrationError, type Edge } from './helpers.js'
import { DATABASE_URL, sharedPostgres, type SharedPostgres } from './postgres.js'
import { sharedRedis, until } from './redis-server.js'
import { inTransaction, relayEdge } from './outbox-helpers.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const order = (orderId: string, status = 'placed') => ({ orderId, status })

t.test('the shipped sql/notify_outbox.sql is the migration of the default table, and running it again changes nothing', async (t) => {
  t.equal(readFileSync(new URL('../sql/notify_outbox.sql', import.meta.url), 'utf8'), outboxMigration())
  const db = await sharedPostgres(t)
  await db.pool.query(outboxMigration(db.table))
  const { rows } = await db.pool.query("SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'notify_outbox' ORDER BY 1", [db.schema])
  t.same(rows.map((r) => r.indexname), ['notify_outbox_pending', 'notify_outbox_pkey'])
  t.throws(() => outboxMigration('Bad-Name'), { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('insertNotification writes one row per user through the caller\'s client and refuses what cannot be stored', async (t) => {
  const db = await sharedPostgres(t)
  const ids = await inTransaction(db.pool, (client) => insertNotification(client, { stream: 'order', users: ['a', 'b'], data: order('1') }, { table: db.table }))
  t.equal(ids.length, 2)
  t.ok(BigInt(ids[0]) < BigInt(ids[1]))
  const { rows } = await db.pool.query(`SELECT id::text, stream, user_id, data FROM ${db.table} ORDER BY id`)
  t.same(rows, [
    { id: ids[0], stream: 'order', user_id: 'a', data: JSON.stringify(order('1')) },
    { id: ids[1], stream: 'order', user_id: 'b', data: JSON.stringify(order('1')) }
  ])
  const [publicId] = await insertNotification(db.pool, { stream: 'promotional', data: 'hi' }, { table: db.table })
  t.same((await db.pool.query(`SELECT user_id FROM ${db.table} WHERE id = $1`, [publicId])).rows, [{ user_id: null }])
  const bad: unknown[] = [
    null, { data: 1 }, { stream: 'order', user: 'a', users: ['a'], data: 1 }, { stream: 'order', users: [], data: 1 },
    { stream: 'order', users: [1], data: 1 }, { stream: 'order', user: 'a', data: () => 1 }
  ]
  for (const input of bad) await t.rejects(insertNotification(db.pool, input as never, { table: db.table }), { code: 'FST_NOTIFY_BAD_PUBLISH' })
  await t.rejects(insertNotification(db.pool, { stream: 'order', user: 'a', data: undefined }, { table: db.table }), { code: 'FST_NOTIFY_DATA_REQUIRED' })
  await t.rejects(insertNotification(db.pool, { stream: 'order', data: 1 }, { table: 'no such;table' }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('the relay publishes committed rows in order, within 100 ms of the commit, and never a rolled-back one', async (t) => {
  const db = await sharedPostgres(t)
  // No polling to speak of: only NOTIFY can make it in time.
  const edge = await relayEdge(t, db, { pollInterval: 60_000 })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await inTransaction(db.pool, (client) => insertNotification(client, { stream: 'order', user: 'alice', data: order('rolled-back') }, { table: db.table }), false)
  const latencies: number[] = []
  for (let i = 0; i < 20; i++) {
    await inTransaction(db.pool, async (client) => {
      await insertNotification(client, { stream: 'order', user: 'alice', data: order(String(i), 'a') }, { table: db.table })
      await insertNotification(client, { stream: 'order', user: 'alice', data: order(String(i), 'b') }, { table: db.table })
    })
    const committed = Date.now()
    t.same((await alice.event('message')).data, order(String(i), 'a'))
    latencies.push(Date.now() - committed)
    t.same((await alice.event('message')).data, order(String(i), 'b'))
  }
  latencies.sort((a, b) => a - b)
  t.ok(latencies[latencies.length - 2] < 100, `commit to delivery under 100 ms (${latencies.join(',')})`)
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'nothing else: the rolled-back row never showed')
  await until('the marks', async () => (await db.pool.query(`SELECT count(*)::int AS n FROM ${db.table} WHERE done_at IS NULL`)).rows[0].n === 0)
  t.same(edge.app.notifyOutbox.stats, { published: 40, replayed: 0, dead: 0, retried: 0 })
})

t.test('polling picks up rows whose NOTIFY was never sent', async (t) => {
  const db = await sharedPostgres(t)
  await db.pool.query(`ALTER TABLE ${db.table} DISABLE TRIGGER notify_outbox_wake`)
  const edge = await relayEdge(t, db, { pollInterval: 200 })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await insertNotification(db.pool, { stream: 'order', user: 'alice', data: order('polled') }, { table: db.table })
  t.same((await alice.event('message', 2000)).data, order('polled'))
})

t.test('hostile rows end done or dead with a reason, counted exactly, and the relay goes on', async (t) => {
  const db = await sharedPostgres(t)
  const rows: Array<[string, string | null, string]> = []
  const expected = { published: 0, dead: { unknown_stream: 0, invalid: 0, too_large: 0, not_json: 0, schema: 0 } }
  for (let i = 0; i < 1000; i++) {
    const kind = i % 8
    if (kind === 0) { rows.push(['nope', 'alice', '{}']); expected.dead.unknown_stream++ } else if (kind === 1) { rows.push(['order', '', JSON.stringify(order(String(i)))]); expected.dead.invalid++ } else if (kind === 2) { rows.push(['order', 'x'.repeat(300), JSON.stringify(order(String(i)))]); expected.dead.invalid++ } else if (kind === 3) { rows.push(['promotional', null, JSON.stringify({ text: 'x'.repeat(2000) })]); expected.dead.too_large++ } else if (kind === 4) { rows.push(['promotional', null, i % 16 === 4 ? '{"text":' : "{'text':1}"]); expected.dead.not_json++ } else if (kind === 5) { rows.push(['order', 'alice', JSON.stringify({ orderId: 1 })]); expected.dead.schema++ } else if (kind === 6) { rows.push(['order', null, JSON.stringify(order(String(i)))]); expected.dead.invalid++ } else { rows.push(['order', 'alice', JSON.stringify(order(String(i)))]); expected.published++ }
  }
  await db.pool.query(`INSERT INTO ${db.table} (stream, user_id, data) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])])
  const edge = await relayEdge(t, db, { maxDataBytes: 1024 }, { logger: false })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await until('every row', () => edge.app.notifyOutbox.stats.published + edge.app.notifyOutbox.stats.dead === 1000, 20_000)
  const { rows: reasons } = await db.pool.query(`SELECT coalesce(dead_reason, 'done') AS reason, count(*)::int AS n FROM ${db.table} WHERE done_at IS NOT NULL GROUP BY 1`)
  t.same(Object.fromEntries(reasons.map((r) => [r.reason, r.n])), { done: expected.published, ...expected.dead })
  t.equal(edge.app.notifyOutbox.stats.dead, 1000 - expected.published)
  t.equal(edge.app.notifyOutbox.health().state, 'relaying')
  // Alice subscribed while the relay worked: she sees the rest live, all in order.
  await insertNotification(db.pool, { stream: 'order', user: 'alice', data: order('last') }, { table: db.table })
  await until('the last one', () => alice.frames.some((f) => f.data?.orderId === 'last'))
  const seen = alice.messages('order').map((f) => Number(f.data.orderId === 'last' ? Infinity : f.data.orderId))
  t.same(seen, [...seen].sort((a, b) => a - b), 'in row order')
})

t.test('options are checked at registration', async (t) => {
  const bad: unknown[] = [
    undefined, 'mysql://x', 7, { database: 'postgres://x', table: 'A-B' }, { database: 'postgres://x', migrate: 'yes' },
    { database: 'postgres://x', batchSize: 0 }, { database: 'postgres://x', pollInterval: -1 }
  ].map((o) => typeof o === 'object' && o !== null ? o : { database: o })
  for (const outbox of bad) t.match(await registrationError({ outbox }), { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(outbox))
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(notifyOutbox, { database: DATABASE_URL }); await app.ready() }, /notify/, 'needs app.notify')
})

async function twoRelays (t: Test, db: SharedPostgres): Promise<{ a: Edge, b: Edge, prefix: string }> {
  const { url, prefix } = await sharedRedis(t)
  const outbox = { database: db.url, table: db.table, lockInterval: 100 }
  const a = await build(t, { redis: url, topicPrefix: prefix, outbox })
  const b = await build(t, { redis: url, topicPrefix: prefix, outbox })
  await until('one relay to lead', () => [a, b].some((e) => e.app.notifyOutbox.health().state === 'relaying'))
  return { a, b, prefix }
}

t.test('of two edges on one table, one relays while the other stands by; the other takes over when it closes', async (t) => {
  const db = await sharedPostgres(t)
  const { a, b } = await twoRelays(t, db)
  await until('the other to stand by', () => [a, b].some((e) => e.app.notifyOutbox.health().state === 'standby'))
  const [leader, standby] = a.app.notifyOutbox.health().state === 'relaying' ? [a, b] : [b, a]
  const alice = await connectUser(t, standby, 'alice')
  await alice.subscribe('order')
  for (let i = 0; i < 50; i++) await insertNotification(db.pool, { stream: 'order', user: 'alice', data: order(String(i)) }, { table: db.table })
  await until('fifty', () => alice.frames.length >= 50)
  t.equal(standby.app.notifyOutbox.stats.published, 0, 'the standby published nothing')
  const closed = leader.app.close()
  for (let i = 50; i < 100; i++) await insertNotification(db.pool, { stream: 'order', user: 'alice', data: order(String(i)) }, { table: db.table })
  await closed
  const started = Date.now()
  await until('the takeover', () => standby.app.notifyOutbox.health().state === 'relaying', 3000)
  await until('a hundred', () => alice.frames.length >= 100, 5000)
  t.ok(Date.now() - started < 3000, 'within a few seconds')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages('order').map((f) => Number(f.data.orderId)), [...Array(100).keys()], 'each once, in order')
})

t.test('a relay on a publisher publishes through it, to an edge over Redis', async (t) => {
  const db = await sharedPostgres(t)
  const { url, prefix } = await sharedRedis(t)
  const edge = await build(t, { redis: url, topicPrefix: prefix })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const publisher = Fastify({ logger: false })
  t.teardown(() => publisher.close())
  const redis = new Redis(url)
  t.teardown(() => redis.quit())
  await publisher.register(notifyPublisher, { streams: STREAMS, topicPrefix: prefix, redis: url })
  // Keys on the edges' Redis, so that a relay that died before marking its rows is replayed, not shown twice.
  const store = new RedisIdempotencyStore({ client: redis, keyPrefix: `${prefix}:idempotency:` })
  await publisher.register(notifyIdempotency, { store })
  await publisher.register(notifyOutbox, { database: db.url, table: db.table })
  await publisher.ready()
  const [id] = await insertNotification(db.pool, { stream: 'order', user: 'alice', data: order('from-publisher') }, { table: db.table })
  t.same((await alice.event('message')).data, order('from-publisher'))
  t.ok(await redis.exists(`${prefix}:idempotency:outbox:${db.table}:${id}`), 'published under the row\'s key')
})
