import { positiveInteger } from '../util.js'
import type { TicketRecord, TicketStore } from './store.js'

export interface MemoryTicketStoreOptions {
  /** Most tickets held at once; past it the oldest unredeemed ticket is dropped. @default 100000 */
  maxTickets?: number
  /** Clock, in ms; tests pass a fake one. @default Date.now */
  now?: () => number
}

interface Entry { record: TicketRecord, expiresAt: number }

/**
 * In-process tickets for a single instance. Bounded: Map keeps insertion order, which is expiry
 * order for one TTL, so expired tickets are swept from the front on each issue and a flood of
 * unused tickets evicts the oldest instead of growing memory.
 */
export class MemoryTicketStore implements TicketStore {
  readonly #tickets = new Map<string, Entry>()
  readonly #maxTickets: number
  readonly #now: () => number
  /** Tickets dropped unredeemed because the store was full. */
  evicted = 0

  constructor (opts: MemoryTicketStoreOptions = {}) {
    this.#maxTickets = positiveInteger('maxTickets', opts.maxTickets, 100_000)
    this.#now = opts.now ?? Date.now
  }

  get size (): number {
    return this.#tickets.size
  }

  async issue (ticket: string, record: TicketRecord, ttlSeconds: number): Promise<void> {
    const now = this.#now()
    for (const [key, entry] of this.#tickets) {
      if (entry.expiresAt > now && this.#tickets.size < this.#maxTickets) break
      this.#tickets.delete(key)
      if (entry.expiresAt > now) this.evicted++
    }
    this.#tickets.set(ticket, { record, expiresAt: now + ttlSeconds * 1000 })
  }

  async redeem (ticket: string): Promise<TicketRecord | null> {
    const entry = this.#tickets.get(ticket)
    if (entry === undefined) return null
    this.#tickets.delete(ticket)
    return entry.expiresAt > this.#now() ? entry.record : null
  }
}
