import { InvalidOptionError } from '../errors.js'
import type { PublishResult } from '../notify.js'
import { positiveInteger } from '../util.js'
import type { IdempotencyEntry, IdempotencyStore } from './store.js'

export interface MemoryIdempotencyStoreOptions {
  /** Most keys kept; past it the oldest go first. @default 100000 */
  maxKeys?: number
  /** Clock, in ms; tests pass a fake one. @default Date.now */
  now?: () => number
}

interface Slot { entry: IdempotencyEntry, token: string, expiresAt: number }

/** Idempotency keys of one process: right for a single instance, not across instances. */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #slots = new Map<string, Slot>()
  readonly #maxKeys: number
  readonly #now: () => number

  constructor (opts: MemoryIdempotencyStoreOptions = {}) {
    this.#maxKeys = positiveInteger('maxKeys', opts.maxKeys, 100_000)
    if (opts.now !== undefined && typeof opts.now !== 'function') throw new InvalidOptionError('now must be a function')
    this.#now = opts.now ?? Date.now
  }

  get size (): number {
    return this.#slots.size
  }

  async claim (key: string, token: string, pendingTtl: number): Promise<IdempotencyEntry | null> {
    const slot = this.#live(key)
    if (slot !== undefined) return slot.entry
    this.#put(key, { entry: { state: 'pending' }, token, expiresAt: this.#now() + pendingTtl * 1000 })
    return null
  }

  async complete (key: string, result: PublishResult, ttl: number): Promise<void> {
    this.#put(key, { entry: { state: 'done', result }, token: '', expiresAt: this.#now() + ttl * 1000 })
  }

  async release (key: string, token: string): Promise<void> {
    const slot = this.#live(key)
    if (slot?.entry.state === 'pending' && slot.token === token) this.#slots.delete(key)
  }

  async extend (key: string, token: string, pendingTtl: number): Promise<void> {
    const slot = this.#live(key)
    if (slot?.entry.state === 'pending' && slot.token === token) this.#put(key, { ...slot, expiresAt: this.#now() + pendingTtl * 1000 })
  }

  #live (key: string): Slot | undefined {
    const slot = this.#slots.get(key)
    if (slot === undefined || slot.expiresAt > this.#now()) return slot
    this.#slots.delete(key)
    return undefined
  }

  #put (key: string, slot: Slot): void {
    // Re-inserting keeps the map in rough expiry order, so the sweep below stops early.
    this.#slots.delete(key)
    this.#slots.set(key, slot)
    const now = this.#now()
    for (const [oldest, { expiresAt }] of this.#slots) {
      if (expiresAt > now && this.#slots.size <= this.#maxKeys) break
      this.#slots.delete(oldest)
    }
  }
}
