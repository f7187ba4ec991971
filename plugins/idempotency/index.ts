import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import {
  BadIdempotencyKeyError, IdempotencyInProgressError, IdempotencyStoreUnavailableError, InvalidOptionError
} from '../errors.js'
import type { OnceKey } from '../history/index.js'
import type { PublishInput, PublishResult } from '../notify.js'
import { publishAs } from '../publishing.js'
import { isOutcomeUnknown } from '../outcome.js'
import type { PublishUnderKey } from '../publishing.js'
import { Deadlines, positiveInteger } from '../util.js'
import { MemoryIdempotencyStore } from './memory-store.js'
import type { IdempotencyEntry, IdempotencyStore } from './store.js'

export * from './store.js'
export * from './memory-store.js'
export * from './redis-store.js'

export interface NotifyIdempotencyOptions {
  /** Where keys live; a `RedisIdempotencyStore` makes a key publish once across instances. @default a MemoryIdempotencyStore */
  store?: IdempotencyStore
  /** Seconds a key answers with its first publish's ids. @default 600 */
  ttl?: number
  /**
   * Seconds a publish in progress holds its key. A duplicate waits that long at most for the
   * first to finish; if the holder died, the marker expires and the next attempt publishes.
   * @default 10
   */
  pendingTtl?: number
  /** Milliseconds the store may take to answer before the publish answers 503. @default 1000 */
  timeout?: number
}

/** The outcome of a publish under an idempotency key. */
export interface IdempotentPublish {
  result: PublishResult
  /** True when the key had published already and `result` is that first publish's answer. */
  replayed: boolean
}

/** `app.notifyIdempotency`: the one publish path of every ingress that carries a key. */
export interface NotifyIdempotency {
  readonly store: IdempotencyStore
  /**
   * `app.notify.publish(input)`, at most once per `key` within the TTL; no key: a plain publish.
   * `from`: the sender of a client publish (SPEC section 13), stamped on the frames.
   */
  publish (key: string | undefined, input: PublishInput, from?: string): Promise<IdempotentPublish>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Idempotent publishing (see `NotifyIdempotency`). */
    notifyIdempotency: NotifyIdempotency
  }
}

const KEY = /^[\x20-\x7e]{1,128}$/
const MAX_POLL_MS = 200

/** Throws `FST_NOTIFY_BAD_IDEMPOTENCY_KEY` unless `key` is 1 to 128 printable ASCII characters. */
export function checkIdempotencyKey (key: unknown): string {
  if (typeof key !== 'string' || !KEY.test(key)) throw new BadIdempotencyKeyError()
  return key
}

async function fastifyNotifyIdempotency (app: FastifyInstance, opts: NotifyIdempotencyOptions): Promise<void> {
  const store = opts.store ?? new MemoryIdempotencyStore()
  for (const method of ['claim', 'complete', 'release', 'extend'] as const) {
    if (typeof store?.[method] !== 'function') throw new InvalidOptionError(`store must implement ${method}()`)
  }
  const ttl = positiveInteger('ttl', opts.ttl, 600)
  const pendingTtl = positiveInteger('pendingTtl', opts.pendingTtl, 10)
  const timeout = positiveInteger('timeout', opts.timeout, 1000)
  const publishUnderKey = app.notify.publish as PublishUnderKey
  // One timer for every call to the store (a claim and a completion per publish), not one each.
  const deadlines = new Deadlines(timeout)
  // A history store that records the answer in the append script makes a repeated attempt safe.
  const historyRecords = app.hasDecorator('notifyHistory') && app.notifyHistory.store.recordsOnce === true
  const unsettled = new Set<NodeJS.Timeout>()
  app.addHook('onClose', async () => {
    for (const timer of unsettled) clearInterval(timer)
    unsettled.clear()
  })

  async function reach<T> (work: Promise<T>): Promise<T> {
    let answer
    try {
      answer = await deadlines.race(work)
    } catch (err) {
      throw new IdempotencyStoreUnavailableError((err as Error).message)
    }
    if (answer === null) throw new IdempotencyStoreUnavailableError(`no answer within ${timeout} ms`)
    return answer.value
  }

  /** Whether every message of this publish goes to a history that records its key atomically. */
  function recorded (input: PublishInput): boolean {
    const name = (input as { stream?: unknown } | null)?.stream
    return historyRecords && typeof name === 'string' && app.notify.streams.get(name)?.history !== undefined
  }

  /**
   * 'held' once this call holds the key; the first publish's answer when there was one; 'shared'
   * when another attempt holds it but the history's record makes publishing under it safe.
   */
  async function take (key: string, token: string, safe: boolean): Promise<PublishResult | 'held' | 'shared'> {
    const deadline = Date.now() + pendingTtl * 1000
    for (let delay = 5; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
      const claim = store.claim(key, token, pendingTtl)
      let entry: IdempotencyEntry | null
      try {
        entry = await reach(claim)
      } catch (err) {
        // The claim may still land once the store answers: free it then, or a retry waits for it to expire.
        claim.then((late) => late === null ? store.release(key, token) : undefined).catch(() => {})
        throw err
      }
      if (entry === null) return 'held'
      if (entry.state === 'done') return entry.result
      // Another attempt is under way, or died, or is waiting for Redis to answer.
      if (safe) return 'shared'
      if (Date.now() >= deadline) throw new IdempotencyInProgressError()
      await sleep(delay)
    }
  }

  // A publisher's app.notify (a remote edge) knows no `from`: it is passed only when given.
  const send = (input: PublishInput, from: string | undefined): Promise<PublishResult> =>
    from === undefined ? app.notify.publish(input) : publishAs(app.notify)(input, from)

  /** Keeps a held key while a publish's outcome is unknown, and records its answer once Redis gives it. */
  function settleLater (key: string, token: string, late: Promise<unknown>): void {
    const timer = setInterval(() => {
      reach(store.extend(key, token, pendingTtl)).catch((err: unknown) =>
        app.log.warn({ err }, 'notify edge: idempotency key not extended while its publish is unanswered'))
    }, pendingTtl * 500).unref()
    unsettled.add(timer)
    late.then((result) => reach(store.complete(key, result as PublishResult, ttl)), () => {
      // Its fate stays unknown: the marker expires, and a retry finds the history's record if there is one.
    }).catch((err: unknown) =>
      app.log.warn({ err }, 'notify edge: the late answer of a publish was not stored; a retry after the pending marker expires may publish again'))
      .finally(() => {
        clearInterval(timer)
        unsettled.delete(timer)
      })
  }

  async function publish (key: string | undefined, input: PublishInput, from?: string): Promise<IdempotentPublish> {
    if (key === undefined) return { result: await send(input, from), replayed: false }
    checkIdempotencyKey(key)
    const token = randomUUID()
    const taken = await take(key, token, recorded(input))
    if (taken !== 'held' && taken !== 'shared') return { result: taken, replayed: true }
    const once: OnceKey = { key, ttl }
    let result: PublishResult
    try {
      result = await publishUnderKey(input, once, from)
    } catch (err) {
      if (taken === 'shared') throw err
      // Sent but unanswered: the key stays held until Redis answers, never freed for a second publish.
      if (isOutcomeUnknown(err)) {
        settleLater(key, token, err.late)
        throw err
      }
      await reach(store.release(key, token)).catch((releaseErr: unknown) =>
        app.log.warn({ err: releaseErr }, 'notify edge: idempotency key not released; a retry waits for it to expire'))
      throw err
    }
    // Published: a store failure now must not turn success into an error the caller would retry.
    await reach(store.complete(key, result, ttl)).catch((err: unknown) =>
      app.log.warn({ err }, 'notify edge: idempotency result not stored; a retry after the pending marker expires publishes again'))
    return { result, replayed: once.replayed === true }
  }

  app.decorate('notifyIdempotency', { store, publish })
}

export const notifyIdempotency = fp(fastifyNotifyIdempotency, {
  fastify: '5.x',
  name: 'notify-edge-idempotency',
  // app.notify from the edge or from the publisher: an outbox relay on a publisher publishes by key too.
  decorators: { fastify: ['notify'] }
})
export default notifyIdempotency

/** Registers the idempotency plugin with its defaults unless the app has it: ingresses call this. */
export async function ensureIdempotency (app: FastifyInstance): Promise<void> {
  if (!app.hasDecorator('notifyIdempotency')) await app.register(notifyIdempotency, {})
}
