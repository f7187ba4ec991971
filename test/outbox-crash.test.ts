import t from 'tap'
import pg from 'pg'
import { insertNotification, outboxMigration } from '../plugins/index.js'
import { build, connectUser, type Client, type Edge } from './helpers.js'
import { serverProcess } from './example-process.js'
import { postgresServer, sharedPostgres, type SharedPostgres } from './postgres.js'
import { redisServer, until } from './redis-server.js'

// The crash matrix of the outbox relay: whatever dies, and when, every committed row is shown
// exactly once, in order per topic, and every row ends done.

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const order = (orderId: string) => ({ orderId, status: 'placed' })

async function insertRange (pool: pg.Pool, table: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await insertNotification(pool, { stream: 'order', user: 'alice', data: order(String(i)) }, { table })
}

/** Waits until alice holds `count` order messages, then checks they are 0..count-1, each once, in order. */
async function seenExactly (t: Test, alice: Client, count: number, timeout = 15_000): Promise<void> {
  await until(`${count} messages`, () => alice.frames.filter((f) => f.event === 'message').length >= count, timeout)
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages('order').map((f) => Number(f.data.orderId)), [...Array(count).keys()], `0..${count - 1}, each once, in order`)
}

async function pending (db: Pick<SharedPostgres, 'pool' | 'table'>): Promise<number> {
  return (await db.pool.query(`SELECT count(*)::int AS n FROM ${db.table} WHERE done_at IS NULL`)).rows[0].n
}

async function relayProcess (t: Test, db: SharedPostgres, redis: string, prefix: string, pendingTtl = 10) {
  const relay = await serverProcess(t, process.execPath, ['--import', '@tapjs/typescript/import', 'test/outbox-relay-process.ts'], {
    TS_NODE_TRANSPILE_ONLY: '1', REDIS_URL: redis, TOPIC_PREFIX: prefix, DATABASE_URL: db.url, OUTBOX_TABLE: db.table, PENDING_TTL: String(pendingTtl)
  })
  await relay.logged('relaying the outbox', 10_000)
  return relay
}

t.test('a relay SIGKILLed after publishing, while marking, and before publishing: a standby takes over and shows each row once', async (t) => {
  const db = await sharedPostgres(t)
  const redis = await redisServer(t)
  const prefix = 'crash'
  const relay = await relayProcess(t, db, redis.url, prefix)
  // The observer: alice's edge, with a relay of its own standing by.
  const edge: Edge = await build(t, { redis: redis.url, topicPrefix: prefix, outbox: { database: db.url, table: db.table, lockInterval: 100 } })
  await until('the standby', () => edge.app.notifyOutbox.health().state === 'standby')
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await insertRange(db.pool, db.table, 0, 10)
  await until('the first ten marked', async () => await pending(db) === 0, 10_000)

  // Rows 10..19 are read and published, then their mark waits on our row locks: the relay dies there.
  relay.child.kill('SIGSTOP')
  await insertRange(db.pool, db.table, 10, 20)
  const locker = await db.pool.connect()
  t.teardown(() => locker.release())
  await locker.query('BEGIN')
  await locker.query(`SELECT id FROM ${db.table} WHERE done_at IS NULL FOR UPDATE`)
  relay.child.kill('SIGCONT')
  await until('the mark to wait on the lock', async () => (await db.pool.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'crash-relay' AND wait_event_type = 'Lock'")).rows[0].n === 1, 10_000)
  await until('rows 10..19 shown', () => alice.frames.filter((f) => f.event === 'message').length >= 20)
  relay.child.kill('SIGKILL')
  // Committed after the relay died: never published by it.
  await insertRange(db.pool, db.table, 20, 30)
  // Its mark never commits (its session is ended), and the table's lock is free.
  await db.pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'crash-relay' AND wait_event_type = 'Lock'")
  await locker.query('ROLLBACK')
  const died = Date.now()
  await until('the takeover', () => edge.app.notifyOutbox.health().state === 'relaying', 5000)
  t.ok(Date.now() - died < 5000, `the standby took over in ${Date.now() - died} ms`)
  await seenExactly(t, alice, 30)
  await until('every row marked', async () => await pending(db) === 0)
  t.same(edge.app.notifyOutbox.stats, { published: 10, replayed: 10, dead: 0, retried: 0 }, 'rows 10..19 replayed under their keys, 20..29 published')
})

t.test('a relay SIGKILLed while its publish hangs on a frozen Redis: the row is shown once, after the pending key expires', async (t) => {
  const db = await sharedPostgres(t)
  const redis = await redisServer(t)
  const prefix = 'frozen'
  const relay = await relayProcess(t, db, redis.url, prefix, 2)
  const edge = await build(t, { redis: redis.url, topicPrefix: prefix, idempotency: { pendingTtl: 2 }, outbox: { database: db.url, table: db.table, lockInterval: 100 } })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await insertRange(db.pool, db.table, 0, 1)
  await until('row 0', () => alice.frames.some((f) => f.event === 'message'))
  redis.pause()
  const { rows: [{ inserted }] } = await db.pool.query('SELECT now() AS inserted')
  await insertRange(db.pool, db.table, 1, 3)
  // The relay has read rows 1 and 2 once its last query is a batch read after they committed; its claim now waits on Redis.
  await until('the relay to read them', async () => (await db.pool.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'crash-relay' AND state = 'idle' AND query LIKE 'SELECT o.id%' AND query_start > $1",
    [inserted])).rows[0].n === 1)
  relay.child.kill('SIGKILL')
  redis.resume()
  await until('the takeover', () => edge.app.notifyOutbox.health().state === 'relaying', 5000)
  await seenExactly(t, alice, 3)
  await until('every row marked', async () => await pending(db) === 0)
})

t.test('Redis dropped under the relay: publishes are retried until it is back, each row shown once in order', async (t) => {
  const db = await sharedPostgres(t)
  const redis = await redisServer(t)
  const edge = await build(t, { redis: redis.url, topicPrefix: 'dropped', outbox: { database: db.url, table: db.table, lockInterval: 100, retryDelay: 200 } })
  await until('the relay', () => edge.app.notifyOutbox.health().state === 'relaying')
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await insertRange(db.pool, db.table, 0, 5)
  await until('rows 0..4', () => alice.frames.filter((f) => f.event === 'message').length >= 5)
  await redis.stop()
  await insertRange(db.pool, db.table, 5, 15)
  await until('a failed publish', () => edge.app.notifyOutbox.stats.retried > 0, 10_000)
  t.ok(await pending(db) >= 10, 'nothing marked while nothing was published')
  await redis.start()
  await seenExactly(t, alice, 15, 20_000)
  await until('every row marked', async () => await pending(db) === 0)
})

t.test('PostgreSQL restarted under the relay: it reconnects, takes the lock again, and goes on', async (t) => {
  const server = await postgresServer(t)
  const pool = new pg.Pool({ connectionString: server.url, max: 2 })
  pool.on('error', () => {})
  t.teardown(() => pool.end())
  const table = 'notify_outbox'
  await pool.query(outboxMigration(table))
  const db = { pool, table }
  const edge = await build(t, { outbox: { database: server.url, table, lockInterval: 100 } })
  await until('the relay', () => edge.app.notifyOutbox.health().state === 'relaying', 10_000)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  await insertRange(pool, table, 0, 5)
  await until('rows 0..4', () => alice.frames.filter((f) => f.event === 'message').length >= 5)
  await server.stop()
  await until('the relay to notice', () => edge.app.notifyOutbox.health().state !== 'relaying', 10_000)
  await server.start()
  await insertRange(pool, table, 5, 10)
  await until('the relay back', () => edge.app.notifyOutbox.health().state === 'relaying', 10_000)
  await seenExactly(t, alice, 10)
  await until('every row marked', async () => await pending(db) === 0)
})
