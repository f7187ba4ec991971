// What happens to a publish's offline users: their preference is asked, `onOffline` hears which
// fallback each got, and each copy is claimed once and sent through the work queue, after the
// publish has answered.
import type { FastifyBaseLogger } from 'fastify'
import type { OfflineFallback, OfflineMessage } from '../publishing.js'
import type { EmailSender, EmailTemplate, OfflineEmailMessage as OfflineCopy } from './email.js'
import { pushPayload, type PushSender } from './push.js'
import { nextDelay, type Attempt, type RetryPolicy } from './retry.js'
import type { DeliveryClaimStore, PushSubscriptionJSON, PushSubscriptionStore } from './store.js'
import type { WorkQueue } from './work-queue.js'

export type OfflineChannel = 'push' | 'email'
export type DeliveryOutcome = 'sent' | 'failed' | 'retried' | 'duplicate'

/** A stream with an offline fallback, as the plugin uses it. */
export interface OfflineStream {
  /** Seconds a copy stays worth sending (the push TTL, and the end of retries). */
  ttl: number
  email: EmailTemplate | null
  topic (user: string): string
}

export interface DeliveryDeps {
  streams: ReadonlyMap<string, OfflineStream>
  push: { sender: PushSender, store: PushSubscriptionStore, maxPayload: number } | null
  email: { sender: EmailSender, address: (user: string) => unknown } | null
  preference: (user: string, stream: string) => unknown
  claims: DeliveryClaimStore
  claimTtl: number
  retry: RetryPolicy
  queue: WorkQueue
  log: FastifyBaseLogger
  count (channel: OfflineChannel, outcome: DeliveryOutcome): void
  removed (): void
}

const FALLBACKS = new Set<unknown>(['push', 'email', 'both', 'none'])

/** The message ids are `<ms>-<seq>`: the publish time is in the id. */
function publishedAt (id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

export class OfflineDelivery {
  readonly #deps: DeliveryDeps

  constructor (deps: DeliveryDeps) {
    this.#deps = deps
  }

  /** The `OfflineHandoff`: returns at once; everything else happens on a later turn. */
  readonly handoff = (users: string[], message: OfflineMessage, onOffline: (users: string[], message: OfflineMessage) => void): void => {
    const stream = this.#deps.streams.get(message.stream)
    if (stream === undefined) return onOffline(users, message)
    const release = this.#deps.queue.hold()
    setImmediate(() => {
      this.#handle(stream, users, message, onOffline).catch((err: unknown) => {
        this.#deps.log.error({ err, stream: message.stream }, 'notify offline delivery failed')
      }).finally(release)
    })
  }

  async #handle (stream: OfflineStream, users: string[], message: OfflineMessage, onOffline: (users: string[], message: OfflineMessage) => void): Promise<void> {
    const chosen = await Promise.all(users.map((user) => this.#fallback(user, message.stream, stream)))
    const fallback: Record<string, OfflineFallback> = {}
    users.forEach((user, i) => { fallback[user] = chosen[i] })
    onOffline(users, { ...message, fallback })
    users.forEach((user, i) => {
      const copy = { user, stream: message.stream, id: message.ids[i], ts: publishedAt(message.ids[i]), data: message.data }
      const expiresAt = copy.ts + stream.ttl * 1000
      if (chosen[i] === 'push' || chosen[i] === 'both') this.#queue('push', () => this.#push(stream, copy, expiresAt))
      if (chosen[i] === 'email' || chosen[i] === 'both') this.#queue('email', () => this.#email(stream, copy, expiresAt))
    })
  }

  /** The user's preference, less the channels this stream or plugin cannot send through. */
  async #fallback (user: string, name: string, stream: OfflineStream): Promise<OfflineFallback> {
    let wanted: unknown
    try {
      wanted = await this.#deps.preference(user, name)
    } catch (err) {
      this.#deps.log.warn({ err, stream: name }, 'notify offline preference hook failed: using push')
      wanted = 'push'
    }
    if (!FALLBACKS.has(wanted)) {
      this.#deps.log.warn({ stream: name, preference: String(wanted).slice(0, 32) }, 'notify offline preference is not push, email, both or none: using push')
      wanted = 'push'
    }
    const push = (wanted === 'push' || wanted === 'both') && this.#deps.push !== null
    const email = (wanted === 'email' || wanted === 'both') && this.#deps.email !== null && stream.email !== null
    return push && email ? 'both' : push ? 'push' : email ? 'email' : 'none'
  }

  #queue (channel: OfflineChannel, task: () => Promise<void>, always = false): void {
    const run = (): Promise<void> => task().catch((err: unknown) => {
      // A store or an app hook failed (Redis away, an address lookup that threw).
      this.#deps.count(channel, 'failed')
      this.#deps.log.error({ err, channel }, `notify offline ${channel} failed`)
    })
    if (!this.#deps.queue.push(run, always)) {
      this.#deps.count(channel, 'failed')
      this.#deps.log.warn({ channel }, 'notify offline queue is full or closed: a copy was dropped')
    }
  }

  /** True for the one caller, of all instances, that may send this copy on this channel. */
  async #claimed (channel: OfflineChannel, stream: OfflineStream, copy: OfflineCopy): Promise<boolean> {
    const won = await this.#deps.claims.claim(`${channel}:${stream.topic(copy.user)}:${copy.id}`, this.#deps.claimTtl)
    if (!won) this.#deps.count(channel, 'duplicate')
    return won
  }

  async #push (stream: OfflineStream, copy: OfflineCopy, expiresAt: number): Promise<void> {
    const push = this.#deps.push!
    if (!await this.#claimed('push', stream, copy)) return
    const subscriptions = await push.store.list(copy.user)
    const payload = pushPayload(copy.stream, copy.id, copy.ts, copy.data, push.maxPayload)
    for (const subscription of subscriptions) {
      this.#queue('push', () => this.#attempt('push', 1, expiresAt, () => this.#pushOnce(copy.user, subscription, payload, expiresAt)), true)
    }
  }

  async #pushOnce (user: string, subscription: PushSubscriptionJSON, payload: string, expiresAt: number): Promise<Attempt> {
    const push = this.#deps.push!
    const ttl = Math.max(0, Math.floor((expiresAt - Date.now()) / 1000))
    const attempt = await push.sender.send(subscription, payload, ttl)
    if (attempt.outcome === 'gone') {
      await push.store.remove(user, subscription.endpoint)
      this.#deps.removed()
    }
    return attempt
  }

  async #email (stream: OfflineStream, copy: OfflineCopy, expiresAt: number): Promise<void> {
    const email = this.#deps.email!
    const to = await email.address(copy.user)
    if (typeof to !== 'string' || to === '') return
    if (!await this.#claimed('email', stream, copy)) return
    const content = stream.email!(copy)
    await this.#attempt('email', 1, expiresAt, () => email.sender.send(to, content))
  }

  /** Runs one attempt; on "retry" queues the next after its backoff, within the TTL. */
  async #attempt (channel: OfflineChannel, attempt: number, expiresAt: number, send: () => Promise<Attempt>): Promise<void> {
    const result = await send()
    if (result.outcome === 'sent') return this.#deps.count(channel, 'sent')
    if (result.outcome === 'gone') return this.#deps.count(channel, 'failed')
    const delay = result.outcome === 'retry' ? nextDelay(this.#deps.retry, attempt, result.after, expiresAt) : null
    if (delay === null) {
      this.#deps.count(channel, 'failed')
      return this.#deps.log.warn({ channel, reason: result.reason, attempt }, `notify offline ${channel} failed`)
    }
    this.#deps.count(channel, 'retried')
    const next = (): Promise<void> => this.#attempt(channel, attempt + 1, expiresAt, send)
    this.#deps.queue.later(delay, next)
  }
}
