import { isNewer } from './message-id.js'

/** A notification as the application receives it. */
export interface NotifyMessage<T = unknown> {
  stream: string
  /** `<ms>-<seq>`, increasing per stream. */
  id: string
  /** Publish time, ms since the epoch. */
  ts: number
  data: T
  /** The sender of a client publish (SPEC section 13), set by the server; absent on a server's publish. */
  from?: string
}

export type MessageHandler<T = unknown> = (message: NotifyMessage<T>) => void

/** One item of a subscribe frame. */
export type StreamRequest = string | { stream: string, since: string }

interface Subscription {
  handlers: Set<MessageHandler<never>>
  /**
   * The last id delivered, or the stream's position when the server accepted it (nothing newer
   * came since): where to resume from, and below which ids are duplicates.
   */
  lastId: string | undefined
  /** Whether the server has accepted it: after a reconnect it may have missed something. */
  accepted: boolean
}

/**
 * The `since` of a stream the client may have missed messages on but has no position for (no
 * history, or the server could not read it): a stream with history replays from its start, one
 * without answers `gap`. Also the server's position of an empty stream.
 */
const FROM_START = '0-0'

/** The streams the application wants, their handlers and how far each has been read. */
export class Subscriptions {
  readonly #streams = new Map<string, Subscription>()

  /** Adds a handler; true when it is the stream's first, so the server must be told. */
  add (stream: string, handler: MessageHandler<never>): boolean {
    const existing = this.#streams.get(stream)
    if (existing !== undefined) {
      existing.handlers.add(handler)
      return false
    }
    this.#streams.set(stream, { handlers: new Set([handler]), lastId: undefined, accepted: false })
    return true
  }

  /** Removes a handler; true when it was the stream's last, so the server must be told. */
  remove (stream: string, handler: MessageHandler<never>): boolean {
    const subscription = this.#streams.get(stream)
    if (subscription === undefined || !subscription.handlers.delete(handler)) return false
    if (subscription.handlers.size > 0) return false
    this.#streams.delete(stream)
    return true
  }

  /**
   * What to send on (re)connect: every stream, with `since` where something was received or
   * the server gave a position, and from the start where the client was subscribed before
   * without either, so that whatever it missed meanwhile is replayed or reported as a gap.
   */
  requests (): StreamRequest[] {
    return [...this.#streams].map(([stream, { lastId, accepted }]) =>
      lastId !== undefined ? { stream, since: lastId } : accepted ? { stream, since: FROM_START } : stream)
  }

  /** The server accepted `stream`, standing at `position` (SPEC section 6) when it keeps history. */
  accept (stream: string, position: unknown): void {
    const subscription = this.#streams.get(stream)
    if (subscription === undefined) return
    subscription.accepted = true
    // Every live message is newer than the position: it is where a resume starts if none comes.
    if (subscription.lastId === undefined && typeof position === 'string') subscription.lastId = position
  }

  /** Hands a message to its stream's handlers unless it is a duplicate; returns what they threw. */
  deliver (message: NotifyMessage): unknown[] {
    const subscription = this.#streams.get(message.stream)
    if (subscription === undefined || !isNewer(message.id, subscription.lastId)) return []
    subscription.lastId = message.id
    const thrown: unknown[] = []
    for (const handler of [...subscription.handlers] as MessageHandler[]) {
      try {
        handler(message)
      } catch (err) {
        thrown.push(err)
      }
    }
    return thrown
  }
}
