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
  /** The last id delivered: where to resume from, and below which ids are duplicates. */
  lastId: string | undefined
}

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
    this.#streams.set(stream, { handlers: new Set([handler]), lastId: undefined })
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

  /** What to send on (re)connect: every stream, with `since` where something was received. */
  requests (): StreamRequest[] {
    return [...this.#streams].map(([stream, { lastId }]) => lastId === undefined ? stream : { stream, since: lastId })
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
