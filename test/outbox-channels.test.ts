// The outbox beyond users: rows for channel keys (SPEC section 12), tables migrated by an earlier
// release, and the inserting code's trace continued by the relay's publish (SPEC section 17).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { trace } from '@opentelemetry/api'
import { insertNotification, outboxMigration } from '../plugins/index.js'
import { connectUser, type Client, type Edge } from './helpers.js'
import { inTransaction, relayEdge } from './outbox-helpers.js'
import { sharedPostgres } from './postgres.js'
import { until } from './redis-server.js'
import { parentOf, traceSpans } from './tracing-sdk.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function roomClient (t: Test, edge: Edge, key: string): Promise<Client> {
  const client = await connectUser(t, edge, `u${randomBytes(4).toString('hex')}`)
  await client.subscribe(`room:${key}`)
  return client
}

t.test('a table of the first release gains channel_key and traceparent, keeps its rows, and migrating again changes nothing', async (t) => {
  const db = await sharedPostgres(t)
  const table = `${db.schema}.old_outbox`
  // The first release's table, with a row pending in it.
  await db.pool.query(`CREATE SEQUENCE ${table}_id_seq; CREATE TABLE ${table} (id bigint PRIMARY KEY, stream text NOT NULL, user_id text,
    data text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), done_at timestamptz, dead_reason text);
    INSERT INTO ${table} (id, stream, user_id, data) VALUES (nextval('${table}_id_seq'), 'order', 'alice', '{}')`)
  await db.pool.query(outboxMigration(table))
  await db.pool.query(outboxMigration(table))
  const [id] = await insertNotification(db.pool, { stream: 'room', key: 'lobby', data: { text: 'hi' } }, { table })
  const { rows } = await db.pool.query(`SELECT stream, user_id, channel_key, traceparent FROM ${table} ORDER BY id`)
  t.same(rows, [
    { stream: 'order', user_id: 'alice', channel_key: null, traceparent: null },
    { stream: 'room', user_id: null, channel_key: 'lobby', traceparent: null }
  ], 'the old row kept; a new one with its key, and no trace outside a span')
  t.ok(BigInt(id) > 1n, 'ids go on from the old sequence')
})

t.test('insertNotification writes one row per key and refuses keys it cannot store', async (t) => {
  const db = await sharedPostgres(t)
  const opts = { table: db.table }
  const ids = await insertNotification(db.pool, { stream: 'room', keys: ['b', 'a', 'b'], data: { text: 'x' } }, opts)
  const { rows } = await db.pool.query(`SELECT id::text, user_id, channel_key FROM ${db.table} ORDER BY id`)
  t.same(rows, ids.map((id, i) => ({ id, user_id: null, channel_key: ['b', 'a', 'b'][i] })), 'in the order given')
  const bad: unknown[] = [
    { stream: 'room', key: 'a', keys: ['a'], data: 1 }, { stream: 'room', user: 'a', key: 'a', data: 1 }, { stream: 'room', users: ['a'], keys: ['a'], data: 1 },
    { stream: 'room', keys: [], data: 1 }, { stream: 'room', keys: [1], data: 1 }, { stream: 'room', key: 5, data: 1 }, { stream: 'room', keys: 'a', data: 1 }
  ]
  for (const input of bad) await t.rejects(insertNotification(db.pool, input as never, opts), { code: 'FST_NOTIFY_BAD_PUBLISH' }, JSON.stringify(input))
})

t.test('writers of one key take turns until they commit; writers of other keys and users do not wait', async (t) => {
  const db = await sharedPostgres(t)
  const insert = (client: { query: typeof db.pool.query }, key: string) => insertNotification(client, { stream: 'room', key, data: { text: key } }, { table: db.table })
  const holder = await db.pool.connect()
  t.teardown(() => holder.release())
  await holder.query('BEGIN')
  const [first] = await insert(holder, 'lobby')
  // Other keys, and a user of the same name, go through while lobby's lock is held.
  await insert(db.pool, 'other')
  await insertNotification(db.pool, { stream: 'room', user: 'lobby', data: {} }, { table: db.table })
  let waited = true
  const second = inTransaction(db.pool, (client) => insert(client, 'lobby')).finally(() => { waited = false })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(waited, 'the second writer of lobby waits for the first to commit')
  await holder.query('COMMIT')
  const [later] = await second
  t.ok(BigInt(later) > BigInt(first), 'and draws a later id')
})

t.test('the relay publishes each row to its key, under the row\'s idempotency key; bad keys are dead with a reason', async (t) => {
  const db = await sharedPostgres(t)
  const edge = await relayEdge(t, db)
  const [lobby, dotted, plain] = await Promise.all(['lobby', 'a.b', 'a'].map((key) => roomClient(t, edge, key)))
  await insertNotification(db.pool, { stream: 'room', keys: ['lobby', 'a.b'], data: { text: 'both' } }, { table: db.table })
  t.match(await lobby.event('message'), { stream: 'room:lobby', data: { text: 'both' } })
  t.match(await dotted.event('message'), { stream: 'room:a.b', data: { text: 'both' } })
  // Published already under the row's key (a relay that died before marking it): marked, not shown again.
  await inTransaction(db.pool, async (client) => {
    const [id] = await insertNotification(client, { stream: 'room', key: 'lobby', data: { text: 'once' } }, { table: db.table })
    await edge.app.notifyIdempotency.publish(`outbox:${db.table}:${id}`, { stream: 'room', key: 'lobby', data: { text: 'once' } })
  })
  t.match(await lobby.event('message'), { data: { text: 'once' } })
  await until('the replay', () => edge.app.notifyOutbox.stats.replayed === 1)
  const hostile: Array<[string, string | null, string | null]> = [
    ['room', null, '*'], ['room', null, 'a/b'], ['room', null, 'a'.repeat(129)], ['room', null, ''], ['room', null, null],
    ['room', 'alice', 'a'], ['order', null, 'alice'], ['promotional', null, 'a']
  ]
  await db.pool.query(`INSERT INTO ${db.table} (stream, user_id, channel_key, data) SELECT s, u, k, '{"text":"hostile"}' FROM unnest($1::text[], $2::text[], $3::text[]) AS r(s, u, k)`,
    [hostile.map((h) => h[0]), hostile.map((h) => h[1]), hostile.map((h) => h[2])])
  await until('the dead rows', () => edge.app.notifyOutbox.stats.dead === hostile.length)
  const { rows } = await db.pool.query(`SELECT dead_reason, count(*)::int AS n FROM ${db.table} WHERE dead_reason IS NOT NULL GROUP BY 1`)
  t.same(rows, [{ dead_reason: 'invalid', n: hostile.length }], 'each dead as invalid')
  for (const c of [lobby, dotted, plain]) {
    await c.request({ event: 'ping' }, 'pong')
    t.same(c.messages(), [], 'no hostile row reached a key')
  }
  t.same(edge.app.notifyOutbox.stats, { published: 2, replayed: 1, dead: hostile.length, retried: 0 })
})

t.test('a row inserted inside an active span is published as its child', async (t) => {
  const db = await sharedPostgres(t)
  const edge = await relayEdge(t, db, {}, { tracing: true })
  const lobby = await roomClient(t, edge, 'lobby')
  await trace.getTracer('test').startActiveSpan('place order', async (active) => {
    await inTransaction(db.pool, (client) => insertNotification(client, { stream: 'room', key: 'lobby', data: { text: 'traced' } }, { table: db.table }))
    active.end()
  })
  await lobby.event('message')
  const { rows } = await db.pool.query(`SELECT traceparent FROM ${db.table}`)
  const [, traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(rows[0].traceparent) ?? []
  t.ok(traceId, `a traceparent stored (${rows[0].traceparent})`)
  await until('the spans', () => traceSpans(traceId).some((s) => s.name === 'notify deliver'), 5000)
  const publish = traceSpans(traceId).find((s) => s.name === 'notify publish')!
  t.equal(parentOf(publish), spanId, "the relay's publish continues the inserting span")
  t.equal(traceSpans(traceId).find((s) => s.name === 'place order')?.spanContext().spanId, spanId, 'which is the span active at the insert')
  t.equal(parentOf(traceSpans(traceId).find((s) => s.name === 'notify deliver')!), publish.spanContext().spanId)
})
