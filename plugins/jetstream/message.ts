import { parseJson, publishInput, Rejection, type RejectReason } from '../amqp/message.js'
import { checkIdempotencyKey } from '../idempotency/index.js'
import type { PublishInput } from '../notify.js'
import { parseSubject } from './subject.js'

// Maps one JetStream message onto `app.notify.publish`'s input; what cannot map is refused with
// a reason, as the AMQP ingress does (plugins/amqp/message.ts).

/** Why a message can never be published: a bounded set, used as a metrics label. */
export type JetStreamRejectReason = Exclude<RejectReason, 'routing_key'> | 'subject'

/** The parts of a message the mapping reads (a `JsMsg` has them). */
export interface NatsDelivery {
  subject: string
  data: Uint8Array
  /** The stream sequence: the idempotency key when the producer set no `Nats-Msg-Id`. */
  seq: number
  msgId: string | undefined
}

export type Mapped = { input: PublishInput, idempotencyKey: string } | { reason: JetStreamRejectReason, message: string }

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The publish a message asks for, or why it can never be one. */
export function mapDelivery (msg: NatsDelivery, prefix: string, stream: string, maxBytes: number): Mapped {
  const target = parseSubject(msg.subject, prefix)
  if (target === null) return { reason: 'subject', message: `subject is none of ${prefix}.public.<stream>, ${prefix}.private.<user>.<stream>, ${prefix}.channel.<stream>.<key>` }
  let idempotencyKey: string
  try {
    // Without Nats-Msg-Id, the stream sequence identifies the message as surely.
    idempotencyKey = msg.msgId === undefined ? `jetstream:${stream}:${msg.seq}` : checkIdempotencyKey(msg.msgId)
  } catch {
    return { reason: 'message_id', message: 'Nats-Msg-Id is not 1 to 128 printable characters' }
  }
  if (msg.data.byteLength > maxBytes) return { reason: 'too_large', message: `body is over ${maxBytes} bytes` }
  let data: unknown
  try {
    data = parseJson(utf8.decode(msg.data))
  } catch (err) {
    if (err instanceof Rejection) return { reason: 'not_json', message: err.message }
    return { reason: 'not_json', message: 'body is not UTF-8' }
  }
  return { input: publishInput(target, data), idempotencyKey }
}
