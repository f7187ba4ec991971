import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import {
  BadIdempotencyKeyError, IdempotencyInProgressError, IdempotencyStoreUnavailableError, InvalidOptionError
} from '../errors.js'
import type { PublishInput, PublishResult } from '../notify.js'
import { publishAs } from '../publishing.js'
import { positiveInteger, within } from '../util.js'
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
  for (const method of ['claim', 'complete', 'release'] as const) {
    if (typeof store?.[method] !== 'function') throw new InvalidOptionError(`store must implement ${method}()`)
  }
  const ttl = positiveInteger('ttl', opts.ttl, 600)
  const pendingTtl = positiveInteger('pendingTtl', opts.pendingTtl, 10)
  const timeout = positiveInteger('timeout', opts.timeout, 1000)

  async function reach<T> (work: Promise<T>): Promise<T> {
    let answer
    try {
      answer = await within(timeout, work)
    } catch (err) {
      throw new IdempotencyStoreUnavailableError((err as Error).message)
    }
    if (answer === null) throw new IdempotencyStoreUnavailableError(`no answer within ${timeout} ms`)
    return answer.value
  }

  /** Null once this call holds the key; the first publish's answer when there was one. */
  async function take (key: string, token: string): Promise<PublishResult | null> {
    const deadline = Date.now() + pendingTtl * 1000
    for (let delay = 5; ; delay = Math.min(delay * 2, MAX_POLL_MS)) {
      const entry: IdempotencyEntry | null = await reach(store.claim(key, token, pendingTtl))
      if (entry === null) return null
      if (entry.state === 'done') return entry.result
      // A concurrent duplicate: wait for the first to finish (or fail, which frees the key).
      if (Date.now() >= deadline) throw new IdempotencyInProgressError()
      await sleep(delay)
    }
  }

  // A publisher's app.notify (a remote edge) knows no `from`: it is passed only when given.
  const send = (input: PublishInput, from: string | undefined): Promise<PublishResult> =>
    from === undefined ? app.notify.publish(input) : publishAs(app.notify)(input, from)

  async function publish (key: string | undefined, input: PublishInput, from?: string): Promise<IdempotentPublish> {
    if (key === undefined) return { result: await send(input, from), replayed: false }
    checkIdempotencyKey(key)
    const token = randomUUID()
    const first = await take(key, token)
    if (first !== null) return { result: first, replayed: true }
    let result: PublishResult
    try {
      result = await send(input, from)
    } catch (err) {
      await reach(store.release(key, token)).catch((releaseErr: unknown) =>
        app.log.warn({ err: releaseErr }, 'notify edge: idempotency key not released; a retry waits for it to expire'))
      throw err
    }
    // Published: a store failure now must not turn success into an error the caller would retry.
    await reach(store.complete(key, result, ttl)).catch((err: unknown) =>
      app.log.warn({ err }, 'notify edge: idempotency result not stored; a retry after the pending marker expires publishes again'))
    return { result, replayed: false }
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
