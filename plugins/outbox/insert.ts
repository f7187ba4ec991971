import { context, propagation } from '@opentelemetry/api'
import { BadPublishError, DataRequiredError } from '../errors.js'
import { DEFAULT_OUTBOX_TABLE, outboxTable } from './schema.js'

/** Anything that runs a parameterized query: a `pg` Client, PoolClient or Pool (inside your transaction, the client that holds it). */
export interface OutboxQueryable {
  query (text: string, values?: unknown[]): Promise<{ rows: unknown[] }>
}

interface NoRecipient { user?: undefined, users?: undefined, key?: undefined, keys?: undefined }

/** What to notify: `app.notify.publish`'s input (a public stream, users of a private one, keys of a channel), written to the outbox instead. */
export type OutboxNotification = { stream: string, data: unknown } & (
  | NoRecipient
  | (Omit<NoRecipient, 'user'> & { user: string })
  | (Omit<NoRecipient, 'users'> & { users: string[] })
  | (Omit<NoRecipient, 'key'> & { key: string })
  | (Omit<NoRecipient, 'keys'> & { keys: string[] })
)

export interface InsertNotificationOptions {
  /** The outbox table, `[schema.]name`. @default 'notify_outbox' */
  table?: string
}

/** One (user, key) pair per row: a row per user, a row per key, or one row for a public stream. */
function recipients (notification: OutboxNotification): { users: Array<string | null>, keys: Array<string | null> } {
  const { user, users, key, keys } = notification as Record<string, unknown>
  const given = [user, users, key, keys].filter((v) => v !== undefined).length
  if (given > 1) throw new BadPublishError('give one of user, users, key or keys')
  const byKey = key !== undefined || keys !== undefined
  const list = users ?? keys ?? [user ?? key ?? null]
  if (!Array.isArray(list) || list.length === 0 || !list.every((u) => u === null || typeof u === 'string')) {
    throw new BadPublishError(`${byKey ? 'key or keys' : 'user or users'} must be a string or a non-empty array of strings`)
  }
  const none = list.map(() => null)
  return byKey ? { users: none, keys: list } : { users: list, keys: none }
}

/** The caller's active trace context as a W3C `traceparent`, or null without one (or without an SDK's propagator). */
function activeTraceparent (): string | null {
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier.traceparent ?? null
}

/** The rows of one notification: its stream and JSON, and a (user, key) pair per row. */
function notificationRows (notification: OutboxNotification): { stream: string, json: string, users: Array<string | null>, keys: Array<string | null> } {
  const { stream, data } = notification ?? {}
  if (typeof stream !== 'string') throw new BadPublishError('stream must be a string')
  const { users, keys } = recipients(notification)
  if (data === undefined) throw new DataRequiredError()
  const json = JSON.stringify(data)
  if (json === undefined) throw new BadPublishError('data must be serializable as JSON')
  return { stream, json, users, keys }
}

/**
 * Inserts `notification` into the outbox through `client`, one row per user or key, and resolves
 * with the row ids. Call it with the client of your open transaction: the rows commit or roll
 * back with your business rows, and the relay publishes them once committed, continuing the trace
 * active here. Stream, users, keys and data are checked against the declarations by the relay,
 * which marks a row it cannot publish dead with its reason; here only what cannot be stored at
 * all is refused (`FST_NOTIFY_BAD_PUBLISH`).
 *
 * An array of notifications (a transaction that notifies the buyer, the seller and the
 * warehouse) is written by one INSERT, its rows in the order given, and resolves with all their
 * ids in that order; nothing is written when one of them is refused; an empty array writes nothing.
 */
export async function insertNotification (
  client: OutboxQueryable, notification: OutboxNotification | readonly OutboxNotification[], opts: InsertNotificationOptions = {}
): Promise<string[]> {
  const table = outboxTable(opts.table ?? DEFAULT_OUTBOX_TABLE)
  const list = Array.isArray(notification) ? notification as readonly OutboxNotification[] : [notification as OutboxNotification]
  const rows = { streams: [] as string[], users: [] as Array<string | null>, keys: [] as Array<string | null>, which: [] as number[] }
  const json: string[] = []
  for (const item of list) {
    const one = notificationRows(item)
    json.push(one.json)
    for (let r = 0; r < one.users.length; r++) {
      rows.streams.push(one.stream)
      rows.users.push(one.users[r])
      rows.keys.push(one.keys[r])
      rows.which.push(json.length)
    }
  }
  if (rows.streams.length === 0) return []
  // Each notification's JSON travels once, however many users or keys it has.
  const { rows: inserted } = await client.query(
    `INSERT INTO ${table} (stream, user_id, channel_key, data, traceparent) SELECT s, u, k, ($5::text[])[w], $6
      FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) WITH ORDINALITY AS r(s, u, k, w, n) ORDER BY n RETURNING id`,
    [rows.streams, rows.users, rows.keys, rows.which, json, activeTraceparent()]
  )
  return (inserted as Array<{ id: string }>).map((row) => String(row.id))
}
