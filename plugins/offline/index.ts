import type { Agent } from 'node:https'
import fp from 'fastify-plugin'
import { Counter } from 'prom-client'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { OfflineFallback } from '../publishing.js'
import { positiveInteger } from '../util.js'
import { OfflineDelivery, type DeliveryOutcome, type OfflineChannel, type OfflineStream } from './delivery.js'
import { EmailSender, type EmailTemplate, type OfflineEmailOptions } from './email.js'
import { MemoryDeliveryClaims, MemoryPushSubscriptionStore } from './memory-store.js'
import { checkVapid, MAX_PUSH_PAYLOAD, PushSender, type VapidDetails } from './push.js'
import { retryPolicy, type OfflineRetryOptions } from './retry.js'
import { pushSubscriptionRoutes } from './routes.js'
import type { DeliveryClaimStore, PushSubscriptionStore } from './store.js'
import { endpointCheck, PUSH_SERVICE_HOSTS } from './subscription.js'
import { WorkQueue } from './work-queue.js'

export type { DeliveryClaimStore, PushSubscriptionJSON, PushSubscriptionStore } from './store.js'
export type { EmailContent, EmailTemplate, OfflineEmailMessage, OfflineEmailOptions } from './email.js'
export type { VapidDetails } from './push.js'
export type { OfflineRetryOptions } from './retry.js'
export type { DeliveryOutcome, OfflineChannel } from './delivery.js'
export { MemoryDeliveryClaims, MemoryPushSubscriptionStore, type MemoryDeliveryClaimsOptions } from './memory-store.js'
export { RedisDeliveryClaims, RedisPushSubscriptionStore, type RedisOfflineClient, type RedisOfflineStoreOptions } from './redis-store.js'
export { PUSH_SERVICE_HOSTS } from './subscription.js'

/** A private stream that falls back to push and e-mail for its offline users. */
export interface OfflineStreamOptions {
  /** Seconds a copy stays worth sending: the push TTL, and the end of retries. @default 86400 */
  ttl?: number
  /** The e-mail for one copy; without it the stream sends no e-mail. */
  email?: EmailTemplate
}

export interface OfflinePushOptions {
  /** VAPID keys and subject (RFC 8292). Required. */
  vapid: VapidDetails
  /** Route of `POST` and `DELETE` (the user's JWT as Bearer). @default '/push/subscriptions' */
  path?: string
  /** Where subscriptions live. @default memory (this instance), or Redis when the edge runs on Redis */
  store?: PushSubscriptionStore
  /** Subscriptions kept per user; past it the oldest go. @default 10 */
  maxSubscriptionsPerUser?: number
  /** Socket inactivity, in ms, before a push request is abandoned (counted failed, not retried). @default 10000 */
  timeout?: number
  /** Largest payload, in bytes, sent whole; longer ones go as `{"event":"message","stream","id","truncated":true}`. @default 3993 (the most RFC 8291 fits) */
  maxPayload?: number
  /** Endpoint hosts accepted at registration: `host`, `host:port` or `*.domain`. @default PUSH_SERVICE_HOSTS (FCM, Mozilla, Apple, Windows) */
  allowedEndpointHosts?: string[]
  /** An `https.Agent` for push requests (a proxy, a private CA). @default keep-alive, 64 sockets */
  agent?: Agent
}

export interface NotifyOfflineOptions {
  /** The private streams whose offline users get a copy, by name. */
  streams: Record<string, OfflineStreamOptions>
  /** Web Push; left out when not given. */
  push?: OfflinePushOptions
  /** E-mail over SMTP; left out when not given. */
  email?: OfflineEmailOptions
  /** The user's choice for a stream. A throw or an unknown answer counts as the default. @default () => 'push' */
  preference?: (user: string, stream: string) => OfflineFallback | Promise<OfflineFallback>
  /** One claim per copy and channel: with Redis, a copy goes out once across instances. @default memory, or Redis with the edge's */
  claims?: DeliveryClaimStore
  /** Seconds a claim is kept (a duplicate within it is not sent). @default 86400 */
  claimTtl?: number
  /** Sends in flight at once (pushes and e-mails together). @default 16 */
  concurrency?: number
  /** Sends waiting at most; past it a copy is dropped and counted failed. @default 100000 */
  maxQueue?: number
  /** Backoff of pushes answered 429 or 5xx and e-mails answered 4xx. */
  retry?: OfflineRetryOptions
}

/** Counts by channel and outcome, since start. */
export type OfflineStats = Record<OfflineChannel, Record<DeliveryOutcome, number>> & { subscriptionsRemoved: number }

/** `app.notifyOffline`. */
export interface NotifyOffline {
  /** Push subscriptions (null without push). */
  readonly subscriptions: PushSubscriptionStore | null
  readonly stats: Readonly<OfflineStats>
  /** Sends in flight now. */
  running (): number
  /** Resolves when every copy handed over so far has been sent, has failed or was dropped. */
  idle (): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Offline delivery (see `NotifyOffline`). */
    notifyOffline: NotifyOffline
  }
}

function offlineStreams (app: FastifyInstance, streams: unknown, withEmail: boolean): Map<string, OfflineStream> {
  if (streams === null || typeof streams !== 'object' || Object.keys(streams).length === 0) {
    throw new InvalidOptionError('offline.streams must name at least one private stream')
  }
  const out = new Map<string, OfflineStream>()
  for (const [name, config] of Object.entries(streams as Record<string, OfflineStreamOptions>)) {
    const declared = app.notify.streams.get(name)
    if (declared?.kind !== 'private') throw new InvalidOptionError(`offline.streams.${name} must be a declared private stream`)
    if (config?.email !== undefined && typeof config.email !== 'function') throw new InvalidOptionError(`offline.streams.${name}.email must be a function`)
    if (config?.email !== undefined && !withEmail) throw new InvalidOptionError(`offline.streams.${name} has an e-mail template: configure email`)
    out.set(name, { ttl: positiveInteger(`offline.streams.${name}.ttl`, config?.ttl, 86400), email: config?.email ?? null, topic: (user) => declared.topic(user) })
  }
  return out
}

function outcomes (): Record<DeliveryOutcome, number> {
  return { sent: 0, failed: 0, retried: 0, duplicate: 0 }
}

async function fastifyNotifyOffline (app: FastifyInstance, opts: NotifyOfflineOptions): Promise<void> {
  const streams = offlineStreams(app, opts.streams, opts.email !== undefined)
  if (opts.push === undefined && opts.email === undefined) throw new InvalidOptionError('offline needs push, email or both')
  if (opts.preference !== undefined && typeof opts.preference !== 'function') throw new InvalidOptionError('offline.preference must be a function')
  const claims = opts.claims ?? new MemoryDeliveryClaims()
  if (typeof claims?.claim !== 'function') throw new InvalidOptionError('offline.claims must implement claim()')
  const queue = new WorkQueue(positiveInteger('offline.concurrency', opts.concurrency, 16), positiveInteger('offline.maxQueue', opts.maxQueue, 100_000))

  const closers: Array<() => void> = []
  let push = null
  if (opts.push !== undefined) {
    const { vapid, store = new MemoryPushSubscriptionStore(), timeout, maxPayload, agent } = opts.push
    for (const method of ['add', 'remove', 'list'] as const) {
      if (typeof store?.[method] !== 'function') throw new InvalidOptionError(`push.store must implement ${method}()`)
    }
    const sender = new PushSender({ vapid: checkVapid(vapid), timeout: positiveInteger('push.timeout', timeout, 10_000), maxPayload: MAX_PUSH_PAYLOAD, agent })
    const limit = positiveInteger('push.maxPayload', maxPayload, MAX_PUSH_PAYLOAD)
    if (limit > MAX_PUSH_PAYLOAD) throw new InvalidOptionError(`push.maxPayload must be at most ${MAX_PUSH_PAYLOAD}`)
    closers.push(() => sender.close())
    push = { sender, store, maxPayload: limit }
    await app.register(pushSubscriptionRoutes, {
      path: opts.push.path ?? '/push/subscriptions',
      store,
      max: positiveInteger('push.maxSubscriptionsPerUser', opts.push.maxSubscriptionsPerUser, 10),
      allowed: endpointCheck(opts.push.allowedEndpointHosts ?? PUSH_SERVICE_HOSTS)
    })
  }
  let email = null
  if (opts.email !== undefined) {
    const sender = new EmailSender(opts.email, opts.push?.timeout ?? 10_000)
    closers.push(() => sender.close())
    email = { sender, address: opts.email.address }
  }

  const stats: OfflineStats = { push: outcomes(), email: outcomes(), subscriptionsRemoved: 0 }
  const metrics = offlineMetrics(app)
  const delivery = new OfflineDelivery({
    streams,
    push,
    email,
    preference: opts.preference ?? (() => 'push'),
    claims,
    claimTtl: positiveInteger('offline.claimTtl', opts.claimTtl, 86400),
    retry: retryPolicy(opts.retry),
    queue,
    log: app.log,
    count (channel, outcome) {
      stats[channel][outcome]++
      metrics?.deliveries.inc({ channel, outcome })
    },
    removed () {
      stats.subscriptionsRemoved++
      metrics?.removed.inc()
    }
  })
  app.notifyOfflineHandoff = delivery.handoff
  app.decorate('notifyOffline', { subscriptions: push?.store ?? null, stats, running: () => queue.running, idle: () => queue.idle() })
  // Nothing new is queued, retries are dropped (at most once), sends in flight finish within their timeout.
  app.addHook('onClose', async () => {
    app.notifyOfflineHandoff = null
    await queue.close()
    for (const close of closers) close()
  })
}

function offlineMetrics (app: FastifyInstance): { deliveries: Counter, removed: Counter } | null {
  if (!app.hasDecorator('notifyMetrics')) return null
  const { registry, prefix } = app.notifyMetrics
  const registers = [registry]
  return {
    deliveries: new Counter({ name: `${prefix}offline_deliveries_total`, help: 'Offline copies by channel (push: per subscription) and outcome: sent, failed, retried, duplicate (claimed elsewhere)', labelNames: ['channel', 'outcome'], registers }),
    removed: new Counter({ name: `${prefix}push_subscriptions_removed_total`, help: 'Push subscriptions removed because the push service answered 404 or 410', registers })
  }
}

export const notifyOffline = fp(fastifyNotifyOffline, {
  fastify: '5.x',
  name: 'notify-edge-offline',
  dependencies: ['notify-edge-notify', '@fastify/jwt']
})
export default notifyOffline
