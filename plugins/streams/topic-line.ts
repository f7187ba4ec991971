import type { BusMessage } from '../bus/index.js'
import type { HistoryBounds } from '../history/index.js'
import { compareMessageIds } from '../message-id.js'

/** Where a topic's line sends what it decides. */
export interface LineSink {
  /** To every local socket of the topic, in order. */
  deliver (message: BusMessage): void
  /** Tells every local socket that messages were lost for good. */
  gap (): void
  /** Reads the topic's history after `since` (`''`: its start); answers through `repaired()`. */
  repair (since: string): void
}

/**
 * The continuity of one topic's live delivery on this instance. Messages of a stream with history
 * carry `prev`, their predecessor in the topic: one that does not follow the last id delivered
 * reveals a hole. While a hole is read from history, later live messages wait here; then the
 * replay goes out in order, followed by what waited, each id at most once. Messages of a stream
 * without history carry no `prev` and pass straight through.
 */
export class TopicLine {
  /** Set once the bus acknowledged the subscription. */
  live = false
  /** Set once the topic has no local subscriber left: a repair under way then delivers nothing. */
  closed = false
  /** While the topic's latest id is being read. */
  starting = false
  /** Id last delivered (streams with history); null before the first and after a gap. */
  #last: string | null = null
  /** The topic's latest id when it went live (`''`: none); null when unknown. */
  #start: string | null = null
  /** Live messages waiting for a repair; null when none is under way. */
  #held: BusMessage[] | null = null
  /** The bus re-subscribed during a repair, whose read may predate the new hole. */
  #again = false

  constructor (readonly topic: string, readonly history: HistoryBounds | undefined, private readonly sink: LineSink) {}

  /** A live message from the bus. */
  receive (message: BusMessage): void {
    if (this.#held !== null) {
      this.#held.push(message)
      return
    }
    if (message.prev === undefined) return this.sink.deliver(message)
    const last = this.#last
    if (last !== null) {
      if (message.prev !== last) {
        // On Redis, history and pub/sub are two connections: a repair may have delivered it first.
        if (compareMessageIds(message.id, last) <= 0) return
        return this.#hole(last, message)
      }
    } else if (this.#start !== null && message.prev !== this.#start &&
      (this.#start === '' || compareMessageIds(message.id, this.#start) > 0)) {
      return this.#hole(this.#start, message)
    }
    this.#deliver(message)
  }

  /** The topic's latest id as it went live, or null when it could not be read. */
  started (latest: string | null): void {
    this.starting = false
    if (this.#last === null) this.#start = latest
  }

  /** The bus re-subscribed: whatever was published meanwhile may be missing. */
  resubscribed (): void {
    if (!this.live || this.closed) return
    if (this.#held !== null) {
      this.#again = true
      return
    }
    this.#check()
  }

  /** The answer to `repair()`: the messages after `since`, or null when history cannot fill the hole. Returns how many went out. */
  repaired (replay: BusMessage[] | null): number {
    const held = this.#held ?? []
    this.#held = null
    if (this.closed) return 0
    let delivered = 0
    if (replay === null) {
      this.#last = null
      this.#start = null
      this.sink.gap()
    } else {
      for (const message of replay) {
        if (this.#last !== null && compareMessageIds(message.id, this.#last) <= 0) continue
        this.#deliver(message)
        delivered++
      }
    }
    if (this.#again) {
      this.#again = false
      this.#check()
    }
    for (const message of held) this.receive(message)
    return delivered
  }

  #check (): void {
    if (this.history === undefined) return this.sink.gap()
    const from = this.#last ?? this.#start
    if (from === null) {
      // Just subscribed, its position still being read: nothing was delivered, so nothing was missed.
      if (!this.starting) this.sink.gap()
      return
    }
    this.#held = []
    this.sink.repair(from)
  }

  #hole (since: string, message: BusMessage): void {
    this.#held = [message]
    this.sink.repair(since)
  }

  #deliver (message: BusMessage): void {
    this.#last = message.id
    this.sink.deliver(message)
  }
}
