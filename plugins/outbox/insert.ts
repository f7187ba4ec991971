import { BadPublishError, DataRequiredError } from '../errors.js'
import { DEFAULT_OUTBOX_TABLE, outboxTable } from './schema.js'

/** Anything that runs a parameterized query: a `pg` Client, PoolClient or Pool (inside your transaction, the client that holds it). */
export interface OutboxQueryable {
  query (text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

/** What to notify: `app.notify.publish`'s input, written to the outbox instead. */
export type OutboxNotification =
  | { stream: string, data: unknown, user?: undefined, users?: undefined }
  | { stream: string, data: unknown, user: string, users?: undefined }
  | { stream: string, data: unknown, users: string[], user?: undefined }

export interface InsertNotificationOptions {
  /** The outbox table, `[schema.]name`. @default 'notify_outbox' */
  table?: string
}

/**
 * Inserts `notification` into the outbox through `client`, one row per user, and resolves with
 * the row ids. Call it with the client of your open transaction: the rows commit or roll back
 * with your business rows, and the relay publishes them once committed. Stream, users and data
 * are checked against the declarations by the relay, which marks a row it cannot publish dead
 * with its reason; here only what cannot be stored at all is refused (`FST_NOTIFY_BAD_PUBLISH`).
 */
export async function insertNotification (
  client: OutboxQueryable, notification: OutboxNotification, opts: InsertNotificationOptions = {}
): Promise<string[]> {
  const table = outboxTable(opts.table ?? DEFAULT_OUTBOX_TABLE)
  const { stream, user, users, data } = notification ?? {}
  if (typeof stream !== 'string') throw new BadPublishError('stream must be a string')
  if (user !== undefined && users !== undefined) throw new BadPublishError('give user or users, not both')
  const recipients = users ?? [user ?? null]
  if (!Array.isArray(recipients) || recipients.length === 0 || !recipients.every((u) => u === null || typeof u === 'string')) {
    throw new BadPublishError('users must be a non-empty array of strings')
  }
  if (data === undefined) throw new DataRequiredError()
  const json = JSON.stringify(data)
  if (json === undefined) throw new BadPublishError('data must be serializable as JSON')
  const { rows } = await client.query(
    `INSERT INTO ${table} (stream, user_id, data) SELECT $1, u, $3 FROM unnest($2::text[]) WITH ORDINALITY AS r(u, n) ORDER BY n RETURNING id`,
    [stream, recipients, json]
  )
  return (rows as Array<{ id: string }>).map((row) => String(row.id))
}
