import type { AsyncMessage } from 'rabbitmq-client'
import { checkIdempotencyKey } from '../idempotency/index.js'
import { checkJsonValue, JSON_MAX_BYTES, parseJsonPayload } from '../json-payload.js'
import type { PublishInput } from '../notify.js'
import { parseRoutingKey, type RoutingTarget } from './routing-key.js'

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

/** A refusal of the shared JSON rule (plugins/json-payload.ts) as a broker ingress's `Rejection`. */
function jsonRejection (err: unknown): Rejection {
  const { code, message } = err as { code: string, message: string }
  return new Rejection(code === 'FST_NOTIFY_PAYLOAD_TOO_LARGE' ? 'too_large' : 'not_json', `${code}: ${message}`)
}

/**
 * JSON text or bytes as data, under the JSON rule every ingress shares; a `Rejection` when it
 * breaks it. The one JSON parse of the broker-like ingresses (AMQP, JetStream, the outbox).
 */
export function parseJson (raw: string | Uint8Array, maxBytes = JSON_MAX_BYTES): unknown {
  try {
    return parseJsonPayload(raw, { maxBytes })
  } catch (err) {
    throw jsonRejection(err)
  }
}

/** The body as data. rabbitmq-client has parsed it already when it says `application/json` and parses. */
export function bodyData (msg: AsyncMessage, maxBytes: number): unknown {
  const { body } = msg
  // Parsed JSON may be a string itself (`"hi"`); only a `text/plain` string is still JSON text.
  const parsed = !Buffer.isBuffer(body) && (typeof body !== 'string' || msg.contentType === 'application/json')
  if (!parsed) return parseJson(body as string | Buffer, maxBytes)
  try {
    return checkJsonValue(body, { maxBytes })
  } catch (err) {
    throw jsonRejection(err)
  }
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
  return { input: publishInput(target, bodyData(msg, maxBytes)), idempotencyKey }
}

/**
 * The publish of `data` to a target (routing key, subject or outbox row): each of user and key
 * only when given, so that a target naming both, or the wrong one for its stream, is refused by
 * `app.notify` with its coded error, as over HTTP.
 */
export function publishInput ({ stream, user, key }: RoutingTarget, data: unknown): PublishInput {
  return { stream, ...(user === undefined ? {} : { user }), ...(key === undefined ? {} : { key }), data } as PublishInput
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
