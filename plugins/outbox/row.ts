import { parseJson, publishInput, Rejection, type RejectReason } from '../amqp/message.js'
import type { PublishInput } from '../notify.js'

// One outbox row as the relay reads it, and the publish it asks for: the columns map onto
// `app.notify.publish`'s input as a routing key's words do (plugins/amqp/message.ts), so a row
// that names a user and a key, a key on a stream that is not a channel, or no key on a channel is
// refused by `app.notify` with the reason `invalid`, as the RabbitMQ and JetStream ingresses do.

/** Why the relay marked a row dead. */
export type OutboxDeadReason = Extract<RejectReason, 'too_large' | 'not_json' | 'unknown_stream' | 'schema' | 'invalid'>

export interface OutboxRow {
  id: string
  stream: string
  user_id: string | null
  channel_key: string | null
  data: string
  traceparent: string | null
}

/** The columns the relay selects, in a query over the table as `o`. */
export const ROW_COLUMNS = 'o.id::text AS id, stream, user_id, channel_key, data, traceparent'

/** The row's topic: its rows are published one after the other, in id order. */
export function rowTopic (row: OutboxRow): string {
  return `${row.stream}\u0000${row.user_id ?? ''}\u0000${row.channel_key ?? ''}`
}

/** The publish a row asks for, or why it can never be one (before `app.notify` checks it). */
export function rowInput (row: OutboxRow, maxDataBytes: number): { input: PublishInput } | { dead: OutboxDeadReason, message: string } {
  if (Buffer.byteLength(row.data) > maxDataBytes) return { dead: 'too_large', message: `data is over ${maxDataBytes} bytes` }
  let data: unknown
  try {
    data = parseJson(row.data)
  } catch (err) {
    if (err instanceof Rejection) return { dead: 'not_json', message: err.message }
    throw err
  }
  return { input: publishInput({ stream: row.stream, user: row.user_id ?? undefined, key: row.channel_key ?? undefined }, data) }
}
