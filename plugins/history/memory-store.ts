import type { BusMessage } from '../bus/index.js'
import { InvalidOptionError } from '../errors.js'
import { MessageIdGenerator, compareMessageIds, isMessageId } from '../message-id.js'
import { messageFrame, type MessageTemplate } from '../streams/protocol.js'
import { positiveInteger } from '../util.js'
import type { HistoryBounds, HistoryStore } from './store.js'

export interface MemoryHistoryStoreOptions {
  /** Clock in ms, for ids, timestamps and expiry. @default Date.now */
  now?: () => number
  /**
   * How long a topic's latest id is remembered after its last message, in seconds, so that a
   * client that had seen everything resumes without a gap after the messages themselves expired.
   * @default 86400
   */
  metaTtl?: number
  /** How often expired messages are dropped and idle topics forgotten, in ms. @default 60000 */
  sweepInterval?: number
}

interface Entry {
  message: BusMessage
  at: number
}

/** One topic's retained messages, oldest first, and what it remembers of those it dropped. */
class Ring {
  readonly entries: Entry[] = []
  /** Id of the newest message dropped: the one before `entries[0]`. */
  floor: string | null = null
  last = ''
  lastAt = 0

  constructor (readonly bounds: HistoryBounds) {}

  push (entry: Entry): void {
    this.entries.push(entry)
    this.last = entry.message.id
    this.lastAt = entry.at
    if (this.entries.length > this.bounds.size) this.#drop()
  }

  expire (now: number): void {
    const cutoff = now - this.bounds.ttl * 1000
    while (this.entries.length > 0 && this.entries[0].at < cutoff) this.#drop()
  }

  /** Index of the first entry whose id is after `since`. */
  firstAfter (since: string): number {
    let low = 0
    let high = this.entries.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if (compareMessageIds(this.entries[mid].message.id, since) <= 0) low = mid + 1
      else high = mid
    }
    return low
  }

  #drop (): void {
    this.floor = this.entries.shift()!.message.id
  }
}

/** History in this process: one ring per topic, bounded by size and age. */
export class MemoryHistoryStore implements HistoryStore {
  readonly appendPublishes = false
  readonly #topics = new Map<string, Ring>()
  readonly #now: () => number
  readonly #ids: MessageIdGenerator
  readonly #metaTtlMs: number
  readonly #sweepInterval: number
  #sweepTimer: NodeJS.Timeout | null = null

  constructor (opts: MemoryHistoryStoreOptions = {}) {
    if (opts.now !== undefined && typeof opts.now !== 'function') throw new InvalidOptionError('now must be a function')
    this.#now = opts.now ?? Date.now
    this.#ids = new MessageIdGenerator(this.#now)
    this.#metaTtlMs = positiveInteger('metaTtl', opts.metaTtl, 86400) * 1000
    this.#sweepInterval = positiveInteger('sweepInterval', opts.sweepInterval, 60000)
  }

  /** Topics with history or a remembered latest id. */
  get topicCount (): number {
    return this.#topics.size
  }

  async append (topic: string, template: MessageTemplate, bounds: HistoryBounds): Promise<BusMessage> {
    let ring = this.#topics.get(topic)
    if (ring === undefined) {
      ring = new Ring(bounds)
      this.#topics.set(topic, ring)
      this.#startSweeping()
    }
    const { id, ts } = this.#ids.next()
    const message: BusMessage = { topic, id, frame: messageFrame(template, id, ts) }
    ring.expire(ts)
    ring.push({ message, at: ts })
    return message
  }

  async read (topic: string, since: string, _bounds: HistoryBounds, limit: number): Promise<BusMessage[] | null> {
    const ring = this.#topics.get(topic)
    if (ring === undefined || !isMessageId(since)) return null
    ring.expire(this.#now())
    const { entries } = ring
    const first = ring.firstAfter(since)
    if (first === entries.length) return since === ring.last ? [] : null
    const before = first === 0 ? ring.floor : entries[first - 1].message.id
    if (before !== since || entries.length - first > limit) return null
    const messages: BusMessage[] = []
    for (let i = first; i < entries.length; i++) messages.push(entries[i].message)
    return messages
  }

  /** Drops expired messages and forgets topics idle for longer than `metaTtl`. */
  sweep (): void {
    const now = this.#now()
    for (const [topic, ring] of this.#topics) {
      ring.expire(now)
      if (ring.entries.length === 0 && now - ring.lastAt > this.#metaTtlMs) this.#topics.delete(topic)
    }
  }

  async close (): Promise<void> {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#sweepTimer = null
    this.#topics.clear()
  }

  #startSweeping (): void {
    if (this.#sweepTimer !== null) return
    this.#sweepTimer = setInterval(() => this.sweep(), this.#sweepInterval)
    this.#sweepTimer.unref()
  }
}
