// The outbox under a service's load: several notifications a transaction through one
// insertNotification call, one wake-up a commit, and a relay whose reads stay an ordered scan of
// the pending index however stale the table's statistics are.
import t from 'tap'
import pg from 'pg'
import { insertNotification } from '../plugins/index.js'
import { pendingRowsQuery, RELAY_SESSION } from '../plugins/outbox/queries.js'
import { connectUser } from './helpers.js'
import { inTransaction, relayEdge } from './outbox-helpers.js'
import { sharedPostgres } from './postgres.js'
import { until } from './redis-server.js'

const order = (orderId: string, status = 'placed') => ({ orderId, status })

t.test('insertNotification takes an array: one INSERT, its rows in the order given, nothing written when one is refused', async (t) => {
  const db = await sharedPostgres(t)
  const opts = { table: db.table }
  const ids = await inTransaction(db.pool, (client) => insertNotification(client, [
    { stream: 'order', user: 'buyer', data: order('1') },
    { stream: 'order', users: ['seller', 'warehouse'], data: order('1', 'to ship') },
    { stream: 'room', key: 'lobby', data: { text: 'sold' } },
    { stream: 'promotional', data: 'hi' }
  ], opts))
  const { rows } = await db.pool.query(`SELECT id::text, stream, user_id, channel_key, data FROM ${db.table} ORDER BY id`)
  t.same(rows, [
    { id: ids[0], stream: 'order', user_id: 'buyer', channel_key: null, data: JSON.stringify(order('1')) },
    { id: ids[1], stream: 'order', user_id: 'seller', channel_key: null, data: JSON.stringify(order('1', 'to ship')) },
    { id: ids[2], stream: 'order', user_id: 'warehouse', channel_key: null, data: JSON.stringify(order('1', 'to ship')) },
    { id: ids[3], stream: 'room', user_id: null, channel_key: 'lobby', data: '{"text":"sold"}' },
    { id: ids[4], stream: 'promotional', user_id: null, channel_key: null, data: '"hi"' }
  ], 'one row per user or key, in the order given, and the ids in that order')
  t.same(await insertNotification(db.pool, [], opts), [], 'an empty array writes nothing')
  const bad: Array<[unknown, string]> = [
    [[{ stream: 'order', user: 'a', data: 1 }, null], 'FST_NOTIFY_BAD_PUBLISH'],
    [[{ stream: 'order', user: 'a', data: 1 }, { stream: 'order', users: [], data: 1 }], 'FST_NOTIFY_BAD_PUBLISH'],
    [[{ stream: 'order', user: 'a', data: 1 }, { stream: 'order', user: 'a', key: 'k', data: 1 }], 'FST_NOTIFY_BAD_PUBLISH'],
    [[{ stream: 'order', user: 'a', data: 1 }, { stream: 'order', user: 'a', data: undefined }], 'FST_NOTIFY_DATA_REQUIRED']
  ]
  for (const [input, code] of bad) await t.rejects(insertNotification(db.pool, input as never, opts), { code }, JSON.stringify(input))
  t.equal((await db.pool.query(`SELECT count(*)::int AS n FROM ${db.table}`)).rows[0].n, 5, 'nothing of a refused array was written')
})

t.test('a transaction of many notifications wakes the relay once, and it delivers them on that wake-up', async (t) => {
  const db = await sharedPostgres(t)
  const listener = new pg.Client({ connectionString: db.url })
  await listener.connect()
  t.teardown(() => listener.end())
  let wakes = 0
  let ended = false
  listener.on('notification', (message) => { if (message.payload === 'end') ended = true; else wakes++ })
  await listener.query(`LISTEN "${db.table}"`)
  // No polling to speak of: only the NOTIFY can make it in time.
  const edge = await relayEdge(t, db, { pollInterval: 60_000 })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const latencies: number[] = []
  for (let i = 0; i < 20; i++) {
    await inTransaction(db.pool, async (client) => {
      await insertNotification(client, Array.from({ length: 10 }, (_, j) => ({ stream: 'order', user: j % 2 === 0 ? 'alice' : `other${j}`, data: order(`${i}.${j}`) })), { table: db.table })
      await insertNotification(client, { stream: 'order', user: 'alice', data: order(`${i}.last`) }, { table: db.table })
    })
    const committed = Date.now()
    t.same((await alice.event('message')).data, order(`${i}.0`))
    latencies.push(Date.now() - committed)
    for (const j of [2, 4, 6, 8]) t.same((await alice.event('message')).data, order(`${i}.${j}`))
    t.same((await alice.event('message')).data, order(`${i}.last`))
  }
  // Polling would take a minute: every delivery came from a NOTIFY. (The 100 ms bound on a quiet
  // machine is outbox.test.ts's; a busy one delays a few of these six-message transactions.)
  latencies.sort((a, b) => a - b)
  t.ok(latencies[latencies.length / 2] < 100, `commit to delivery under 100 ms, the median (${latencies.join(',')})`)
  await until('the marks', () => edge.app.notifyOutbox.stats.published === 220)
  // Notifications arrive in commit order: once this one is in, every earlier one is.
  await db.pool.query("SELECT pg_notify($1, 'end')", [db.table])
  await until('the last notification', () => ended)
  // Two INSERT statements a transaction, each firing the statement trigger: PostgreSQL folds a
  // transaction's identical notifications into one.
  t.equal(wakes, 20, 'one NOTIFY a transaction')
})

t.test('the relay\'s read is an ordered scan of the pending index, with the statistics of an empty table', async (t) => {
  const db = await sharedPostgres(t)
  await db.pool.query(`ANALYZE ${db.table}`)
  // A backlog the statistics know nothing of, most of it done but not vacuumed.
  await db.pool.query(`INSERT INTO ${db.table} (stream, user_id, data) SELECT 'order', 'u' || (n % 100), '{}' FROM generate_series(1, 20000) AS n`)
  await db.pool.query(`UPDATE ${db.table} SET done_at = now() WHERE id IN (SELECT id FROM ${db.table} ORDER BY id LIMIT 15000)`)
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  t.teardown(() => client.end())
  await client.query(RELAY_SESSION)
  const { rows: [{ 'QUERY PLAN': [{ Plan: plan }] }] } = await client.query(`EXPLAIN (FORMAT JSON) ${pendingRowsQuery(db.table)}`, [100])
  t.equal(plan['Node Type'], 'Limit')
  t.match(plan.Plans, [{ 'Node Type': 'Index Scan', 'Index Name': 'notify_outbox_pending' }], 'no sort: the index gives the order, and the scan stops at the limit')
})
