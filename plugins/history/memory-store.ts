import type { BusMessage } from '../bus/index.js'
import { InvalidOptionError } from '../errors.js'
import { MessageIdGenerator, compareMessageIds, isMessageId } from '../message-id.js'
import { messageFrame, type MessageTemplate } from '../message.js'
import { positiveInteger } from '../util.js'
import type { HistoryBounds, HistoryStore, OnceKey } from './store.js'

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

/** One topic's retained messages, oldest first, and what it remembers of those it dropped. */
class Ring {
  // Parallel arrays rather than one object per entry: one allocation less per message kept.
  readonly messages: BusMessage[] = []
  readonly times: number[] = []
  /** Id of the newest message dropped: the one before `messages[0]`. */
  floor: string | null = null
  last = ''
  lastAt = 0

  constructor (readonly topic: string, readonly bounds: HistoryBounds) {}

  push (message: BusMessage, at: number): void {
    this.messages.push(message)
    this.times.push(at)
    this.last = message.id
    this.lastAt = at
    if (this.messages.length > this.bounds.size) this.#drop()
  }

  expire (now: number): void {
    const cutoff = now - this.bounds.ttl * 1000
    while (this.times.length > 0 && this.times[0] < cutoff) this.#drop()
  }

  /** Index of the first message whose id is after `since`. */
  firstAfter (since: string): number {
    let low = 0
    let high = this.messages.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if (compareMessageIds(this.messages[mid].id, since) <= 0) low = mid + 1
      else high = mid
    }
    return low
  }

  #drop (): void {
    this.times.shift()
    this.floor = this.messages.shift()!.id
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
  #closed = false

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

  // No `recordsOnce`: a memory store serves one process, whose idempotency store is the record.
  // `_trace` is not kept: the caller puts it on the message it publishes.
  async append (topic: string, template: MessageTemplate, bounds: HistoryBounds, _once?: OnceKey, _trace?: string): Promise<BusMessage> {
    let ring = this.#topics.get(topic)
    if (ring === undefined) {
      ring = new Ring(topic, bounds)
      this.#topics.set(topic, ring)
      this.#startSweeping()
    }
    const { id, ts } = this.#ids.next()
    // The ring's copy of the topic string: equal, and one less string kept per message.
    const message: BusMessage = { topic: ring.topic, id, frame: messageFrame(template, id, ts), prev: ring.last }
    ring.expire(ts)
    ring.push(message, ts)
    return message
  }

  async read (topic: string, since: string, _bounds: HistoryBounds, limit: number): Promise<BusMessage[] | null> {
    if (since !== '' && !isMessageId(since)) return null
    const ring = this.#topics.get(topic)
    if (ring === undefined) return since === '' ? [] : null
    ring.expire(this.#now())
    const { messages } = ring
    const first = since === '' ? 0 : ring.firstAfter(since)
    if (first === messages.length) return since === ring.last ? [] : null
    const before = first === 0 ? ring.floor ?? '' : messages[first - 1].id
    if (before !== since || messages.length - first > limit) return null
    return messages.slice(first)
  }

  async latest (topic: string): Promise<string> {
    return this.#topics.get(topic)?.last ?? ''
  }

  /** Drops expired messages and forgets topics idle for longer than `metaTtl`. */
  sweep (): void {
    const now = this.#now()
    for (const [topic, ring] of this.#topics) {
      ring.expire(now)
      if (ring.messages.length === 0 && now - ring.lastAt > this.#metaTtlMs) this.#topics.delete(topic)
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#sweepTimer = null
    this.#topics.clear()
  }

  #startSweeping (): void {
    // A publish racing the app's close must not start a timer nobody clears.
    if (this.#sweepTimer !== null || this.#closed) return
    this.#sweepTimer = setInterval(() => this.sweep(), this.#sweepInterval)
    this.#sweepTimer.unref()
  }
}
