import type { AsyncMessage } from 'rabbitmq-client'
import { checkIdempotencyKey } from '../idempotency/index.js'
import type { PublishInput } from '../notify.js'
import { parseRoutingKey } from './routing-key.js'

// Maps one delivery onto `app.notify.publish`'s input; what cannot map is rejected with a reason.

/** Why a delivery can never be published: a bounded set, used as a metrics label. */
export type RejectReason = 'routing_key' | 'message_id' | 'too_large' | 'not_json' | 'unknown_stream' | 'schema' | 'invalid'

/** A delivery that can never succeed, and why. */
export class Rejection extends Error {
  constructor (readonly reason: RejectReason, message: string) {
    super(message)
  }
}

export interface Delivery {
  input: PublishInput
  idempotencyKey: string | undefined
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function parseJson (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new Rejection('not_json', 'body is not JSON')
  }
}

/** The body as data. rabbitmq-client has parsed it already when it says `application/json` and parses. */
function bodyData (msg: AsyncMessage, maxBytes: number): unknown {
  const { body } = msg
  // Parsed JSON may be a string itself (`"hi"`); only a `text/plain` string is still JSON text.
  const parsed = !Buffer.isBuffer(body) && (typeof body !== 'string' || msg.contentType === 'application/json')
  const bytes = parsed ? Buffer.byteLength(JSON.stringify(body) ?? '') : Buffer.byteLength(body)
  if (bytes > maxBytes) throw new Rejection('too_large', `body is over ${maxBytes} bytes`)
  if (parsed) return body
  if (typeof body === 'string') return parseJson(body)
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw new Rejection('not_json', 'body is not UTF-8')
  }
  return parseJson(text)
}

/** The publish a delivery asks for; throws a `Rejection` when it can never be one. */
export function delivery (msg: AsyncMessage, maxBytes: number): Delivery {
  const target = parseRoutingKey(msg.routingKey)
  if (target === null) throw new Rejection('routing_key', 'routing key is none of public.<stream>, private.<user>.<stream>, channel.<stream>.<key>')
  let idempotencyKey: string | undefined
  try {
    idempotencyKey = msg.messageId === undefined ? undefined : checkIdempotencyKey(msg.messageId)
  } catch {
    throw new Rejection('message_id', 'messageId is not 1 to 128 printable characters')
  }
  const data = bodyData(msg, maxBytes)
  const input = target.key !== undefined
    ? { stream: target.stream, key: target.key, data }
    : target.user === undefined ? { stream: target.stream, data } : { stream: target.stream, user: target.user, data }
  return { input: input as PublishInput, idempotencyKey }
}

/** The reason a publish error gives a delivery, or null when it may succeed on a retry. */
export function rejectReason (err: unknown): RejectReason | null {
  const { statusCode, code } = err as { statusCode?: number, code?: string }
  // 409: the same key is being published elsewhere; 429 and 5xx pass.
  if (statusCode === undefined || statusCode < 400 || statusCode >= 500 || statusCode === 409 || statusCode === 429) return null
  if (code === 'FST_NOTIFY_UNKNOWN_STREAM') return 'unknown_stream'
  if (code === 'FST_NOTIFY_INVALID_DATA') return 'schema'
  return 'invalid'
}
