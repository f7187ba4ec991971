// A client's publish (SPEC section 13): checked here (who, where, how big, how often, the
// stream's hook), then handed to the one publish path every ingress uses
// (`app.notifyIdempotency.publish` → `app.notify.publish`: schema, history, ids, bus), with the
// sender stamped as `from` once, in the frame every subscriber gets. A refused publish never
// reaches the bus.
import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { DeclaredStream } from '../declarations.js'
import { checkIdempotencyKey } from '../idempotency/index.js'
import type { Inbound, InboundCaller, PublishFrame, PublishTarget } from '../inbound.js'
import type { PublishInput } from '../publishing.js'
import type { Principal } from '../principal.js'
import { publishErrorCode, upstreamError } from './answers.js'
import type { PublishGate } from './gates.js'
import type { FleetUserRate } from './fleet-rate.js'
import { Bucket, type Rate, type UserBuckets } from './rate.js'

export interface ClientPublishLimits {
  /** Per connection. */
  rate: Rate
  /** Per user, across their connections on this instance. */
  users: UserBuckets
  /** Per user across instances, when asked for: taken after the local limits let a publish through. */
  fleet: FleetUserRate | null
  /** Largest publish frame, in bytes. */
  maxBytes: number
}

/** The stream and channel key a frame names: `chat`, or `room:lobby`. */
export function targetOf (name: string): PublishTarget {
  const at = name.indexOf(':')
  return at < 0 ? { stream: name } : { stream: name.slice(0, at), key: name.slice(at + 1) }
}

// A client's idempotency key is the client's own: scoped to its user, so that two users' keys
// never meet (and a key never replays another user's answer). Hashed to keep within 128 characters.
function scopedKey (user: string, key: string): string {
  return `client:${createHash('sha256').update(user).update('\n').update(key).digest('base64url')}`
}

type Authorize = (principal: Principal, target: unknown) => boolean | Promise<boolean>

export class ClientPublish {
  readonly #buckets = new WeakMap<InboundCaller, Bucket>()

  constructor (
    private readonly app: FastifyInstance,
    private readonly gates: ReadonlyMap<string, PublishGate>,
    private readonly authorizeKey: Inbound['authorizeKey'],
    private readonly limits: ClientPublishLimits
  ) {}

  async publish (caller: InboundCaller, frame: PublishFrame): Promise<void> {
    const { id } = frame
    const refuse = (code: Parameters<typeof upstreamError>[0], message: string, reason?: string): void =>
      caller.send(upstreamError(code, message, { id, stream: frame.stream.slice(0, 64), reason }))
    const principal = caller.principal
    const user = principal.user
    if (user === null) return refuse('FORBIDDEN', 'anonymous connections may not publish')
    const target = targetOf(frame.stream)
    const stream = this.app.notify.streams.get(target.stream)
    if (stream === undefined) return refuse('UNKNOWN_STREAM', 'unknown stream')
    const gate = this.gates.get(stream.name)
    if (gate === undefined) return refuse('FORBIDDEN', 'clients may not publish to this stream')
    if (frame.bytes > this.limits.maxBytes) return refuse('BAD_REQUEST', `publish frames are limited to ${this.limits.maxBytes} bytes`)
    let key: string | undefined
    if (frame.idempotencyKey !== undefined) {
      try {
        key = scopedKey(user, checkIdempotencyKey(frame.idempotencyKey))
      } catch (err) {
        return refuse('BAD_REQUEST', (err as Error).message)
      }
    }
    if (!this.#admit(caller, user)) return refuse('RATE_LIMITED', 'too many publishes: slow down')
    if (this.limits.fleet !== null) {
      try {
        if (!await this.limits.fleet.take(user)) return refuse('RATE_LIMITED', 'too many publishes from this user: slow down')
      } catch (err) {
        return refuse('UNAVAILABLE', (err as Error).message)
      }
    }
    if (!await this.#authorized(caller, stream, target)) return refuse('FORBIDDEN', 'not allowed on this stream')
    const decision = await gate(principal, target, frame.data)
    if (!decision.allow) return refuse(decision.code, decision.message, decision.reason)
    const input = (target.key === undefined
      ? { stream: stream.name, data: decision.data }
      : { stream: stream.name, key: target.key, data: decision.data }) as PublishInput
    // Held from here, not before the hooks: a slow hook must not hold what the socket is sent.
    caller.hold?.()
    try {
      const { result, replayed } = await this.app.notifyIdempotency.publish(key, input, user)
      const message = (result as { id: string }).id
      caller.send(JSON.stringify({ event: 'published', id, stream: frame.stream, message, replayed: replayed || undefined }))
    } catch (err) {
      const code = publishErrorCode(err)
      if (code === 'INTERNAL') this.app.log.error({ err, stream: stream.name }, 'notify client publish failed')
      refuse(code, code === 'INTERNAL' ? 'internal error' : (err as Error).message)
    } finally {
      caller.release?.()
    }
  }

  /** One token from the connection's bucket and one from its user's; neither is spent on a refusal. */
  #admit (caller: InboundCaller, user: string): boolean {
    let bucket = this.#buckets.get(caller)
    if (bucket === undefined) this.#buckets.set(caller, bucket = new Bucket())
    const now = performance.now()
    // The connection's own limit first: a socket over it does not use up its user's budget.
    return bucket.take(this.limits.rate, now) && this.limits.users.take(user, now)
  }

  /** Whoever may not subscribe to a stream (or channel key) may not publish to it either. */
  async #authorized (caller: InboundCaller, stream: DeclaredStream, target: PublishTarget): Promise<boolean> {
    // A backend's answer, or the yes this connection got from it a moment ago.
    if (stream.remoteAuthorize !== null) return target.key !== undefined && await this.authorizeKey(caller, { stream: stream.name, key: target.key })
    const principal = caller.principal
    const authorize = stream.authorize as Authorize | undefined
    if (authorize === undefined) return true
    try {
      return (await authorize(principal, target.key === undefined ? stream.name : target)) === true
    } catch (err) {
      this.app.log.warn({ err, stream: stream.name }, 'notify authorize hook failed: refusing the client publish')
      return false
    }
  }
}
