import { ROW_COLUMNS } from './row.js'

// The relay's statements, apart so that a test can plan them as the relay runs them.

/**
 * Run once on the relay's connection. The pending rows are the first entries of the partial
 * index `<table>_pending`, read in its order: that is cheap only as an ordered index scan that
 * stops at the LIMIT. With statistics taken while the table was small (a new table, autovacuum
 * not run yet), PostgreSQL plans a bitmap scan of every pending entry, or a sequential scan,
 * then a sort; both read the whole backlog, and the done rows not yet vacuumed, for each batch
 * (4 ms a batch at 5,000 rows behind, growing with them). The connection is the relay's alone.
 */
export const RELAY_SESSION = 'SET enable_bitmapscan = off; SET enable_seqscan = off'

/** The oldest `$1` pending rows in id order. `o.id`, not `id`: ORDER BY would take the text column of the same name. */
export function pendingRowsQuery (table: string): string {
  return `SELECT ${ROW_COLUMNS} FROM ${table} AS o WHERE done_at IS NULL ORDER BY o.id LIMIT $1`
}

/** Marks rows `$1` done in one statement, each with its dead reason from `$2` (null when published). */
export function markRowsQuery (table: string): string {
  return `UPDATE ${table} AS t SET done_at = now(), dead_reason = m.reason FROM unnest($1::bigint[], $2::text[]) AS m(id, reason) WHERE t.id = m.id`
}
