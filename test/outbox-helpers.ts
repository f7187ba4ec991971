// What the outbox tests share: an edge whose relay leads on a test's table, and a transaction.
import type pg from 'pg'
import { build, type Edge } from './helpers.js'
import type { SharedPostgres } from './postgres.js'
import { until } from './redis-server.js'

type Test = Parameters<typeof build>[0]

/** An edge relaying `db.table`, once its relay holds the lock. */
export async function relayEdge (t: Test, db: SharedPostgres, outbox: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<Edge> {
  const edge = await build(t, { outbox: { database: db.url, table: db.table, lockInterval: 100, ...outbox }, ...extra })
  await until('the relay to lead', () => edge.app.notifyOutbox.health().state === 'relaying', 5000)
  return edge
}

/** `work` in a transaction on a client of `pool`, committed (or rolled back when `commit` is false). */
export async function inTransaction<T> (pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, commit = true): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await work(client)
    await client.query(commit ? 'COMMIT' : 'ROLLBACK')
    return result
  } finally {
    client.release()
  }
}
