import { InvalidOptionError } from '../errors.js'
import { positiveInteger } from '../util.js'
import type { DeliveryClaimStore, PushSubscriptionJSON, PushSubscriptionStore } from './store.js'

/** Push subscriptions of one process: right for a single instance. */
export class MemoryPushSubscriptionStore implements PushSubscriptionStore {
  // Per user, by endpoint, in insertion order (a Map keeps it): the first entry is the oldest.
  readonly #users = new Map<string, Map<string, PushSubscriptionJSON>>()

  async add (user: string, subscription: PushSubscriptionJSON, max: number): Promise<number> {
    let subscriptions = this.#users.get(user)
    if (subscriptions === undefined) {
      subscriptions = new Map()
      this.#users.set(user, subscriptions)
    }
    subscriptions.delete(subscription.endpoint)
    subscriptions.set(subscription.endpoint, subscription)
    for (const oldest of subscriptions.keys()) {
      if (subscriptions.size <= max) break
      subscriptions.delete(oldest)
    }
    return subscriptions.size
  }

  async remove (user: string, endpoint: string): Promise<boolean> {
    const subscriptions = this.#users.get(user)
    const removed = subscriptions?.delete(endpoint) ?? false
    if (subscriptions?.size === 0) this.#users.delete(user)
    return removed
  }

  async list (user: string): Promise<PushSubscriptionJSON[]> {
    return [...this.#users.get(user)?.values() ?? []]
  }
}

export interface MemoryDeliveryClaimsOptions {
  /** Most claims kept; past it the oldest go first. @default 100000 */
  maxKeys?: number
  /** Clock, in ms; tests pass a fake one. @default Date.now */
  now?: () => number
}

/** Delivery claims of one process: a message heard twice here goes out once. */
export class MemoryDeliveryClaims implements DeliveryClaimStore {
  readonly #claims = new Map<string, number>()
  readonly #maxKeys: number
  readonly #now: () => number

  constructor (opts: MemoryDeliveryClaimsOptions = {}) {
    this.#maxKeys = positiveInteger('maxKeys', opts.maxKeys, 100_000)
    if (opts.now !== undefined && typeof opts.now !== 'function') throw new InvalidOptionError('now must be a function')
    this.#now = opts.now ?? Date.now
  }

  get size (): number {
    return this.#claims.size
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    const now = this.#now()
    const expiresAt = this.#claims.get(key)
    if (expiresAt !== undefined && expiresAt > now) return false
    this.#claims.delete(key)
    this.#claims.set(key, now + ttl * 1000)
    // Claims are inserted in time order with one TTL per caller: the oldest expire first.
    for (const [oldest, at] of this.#claims) {
      if (at > now && this.#claims.size <= this.#maxKeys) break
      this.#claims.delete(oldest)
    }
    return true
  }
}
