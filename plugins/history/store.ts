import type { BusMessage } from '../bus/index.js'
import type { MessageTemplate } from '../message.js'

/** How much history a stream keeps per topic. */
export interface HistoryBounds {
  /** Most messages kept per topic; older ones are trimmed. */
  size: number
  /** Seconds a message stays in history. */
  ttl: number
}

/** A message `append` recorded. */
export interface AppendedMessage extends BusMessage {
  /**
   * Set when the store also published it (`appendPublishes`): how many instances subscribed to
   * the topic received it (PUBLISH's reply inside the append script).
   */
  receivers?: number
  /**
   * Set when an earlier append under the same `OnceKey` had recorded this message: nothing was
   * appended or published now, and this is that append's answer.
   */
  replayed?: true
}

/** The idempotency key of a publish, for a store that records the answer with the append (`recordsOnce`). */
export interface OnceKey {
  key: string
  /** Seconds the record is kept. */
  ttl: number
  /** Set by the publish path when every message of the publish was answered from records. */
  replayed?: boolean
}

/** One of the reads `readMany` makes: `read`'s arguments. */
export interface HistoryRead {
  topic: string
  since: string
  bounds: HistoryBounds
  limit: number
}

/**
 * Where history lives (memory ring, Redis Streams). Ids are the store's to assign: unique and
 * increasing per topic, the same in history and on the wire.
 *
 * A read after `since` is complete when the message that followed `since` on the topic is still
 * retained (not trimmed by size, not older than `ttl`), or when `since` is the topic's latest
 * message (nothing was missed). Anything else — trimmed, expired, an id this topic never had —
 * is a gap, and so is a read that would return more than `limit` messages.
 */
export interface HistoryStore {
  /**
   * True when `append` also puts the message on the bus in the same atomic step (Redis), false
   * when the caller publishes it once `append` has resolved (memory).
   */
  readonly appendPublishes: boolean
  /**
   * True when `append` under a `once` key records its answer in the same atomic step as the
   * append and the publish, and a later append under that key answers the record (`replayed`)
   * instead of appending: a publish may then be retried under its key whatever became of the first.
   */
  readonly recordsOnce?: boolean
  /**
   * Records a message on `topic`, completing `template` with the id it assigns; the message
   * carries the id before it in the topic as `prev` (`''` for the topic's first). A store that
   * `recordsOnce` honours `once` (others ignore it). `trace`, the publish span's `traceparent`,
   * goes on the bus message when the store publishes it.
   */
  append (topic: string, template: MessageTemplate, bounds: HistoryBounds, once?: OnceKey, trace?: string): Promise<AppendedMessage>
  /**
   * The messages after `since`, oldest first, or null for a gap. `since` may be `''`: the
   * topic's start, complete only while nothing was trimmed from it.
   */
  read (topic: string, since: string, bounds: HistoryBounds, limit: number): Promise<BusMessage[] | null>
  /**
   * `read` of each of `reads`, in their order, in one request to the backend when it can (a
   * subscribe resuming many streams is then one round trip, not one per stream). Rejects, every
   * read failing alike, when the backend did not answer. Optional: `readAll` falls back to `read`.
   */
  readMany? (reads: readonly HistoryRead[]): Promise<Array<BusMessage[] | null>>
  /** The topic's latest id, `''` when it has none: where live delivery starts from. */
  latest (topic: string): Promise<string>
  /** `latest` of each topic, in one request when it can, as `readMany`. Optional: see `latestAll`. */
  latestMany? (topics: readonly string[]): Promise<string[]>
  /** Releases timers and connections the store opened. */
  close (): Promise<void>
}

/** `store.readMany(reads)`, or a `read` per entry for a store without it. */
export function readAll (store: HistoryStore, reads: readonly HistoryRead[]): Promise<Array<BusMessage[] | null>> {
  if (reads.length === 0) return Promise.resolve([])
  if (store.readMany !== undefined) return store.readMany(reads)
  return Promise.all(reads.map(({ topic, since, bounds, limit }) => store.read(topic, since, bounds, limit)))
}

/** `store.latestMany(topics)`, or a `latest` per topic for a store without it. */
export function latestAll (store: HistoryStore, topics: readonly string[]): Promise<string[]> {
  if (topics.length === 0) return Promise.resolve([])
  if (store.latestMany !== undefined) return store.latestMany(topics)
  return Promise.all(topics.map((topic) => store.latest(topic)))
}
