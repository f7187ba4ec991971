import type { BusMessage, NotifyBus } from '../bus/index.js'
import { OutboundFrame } from './wire.js'

/** A local receiver of a topic's messages: one per socket subscription. */
export interface Subscriber {
  /** Writes an already-framed message; `message` carries its id for de-duplication. */
  deliver (frame: OutboundFrame, message: BusMessage): void
}

interface TopicSubscribers {
  subscribers: Set<Subscriber>
  listener: (message: BusMessage) => void
  ready: Promise<void>
}

/**
 * Maps bus topics to the local sockets that want them. One bus listener per topic, whatever the
 * number of sockets; each message is framed once, and that frame is shared by every socket's write.
 */
export class Fanout {
  readonly #topics = new Map<string, TopicSubscribers>()

  constructor (private readonly bus: NotifyBus) {}

  /** Topics with at least one local subscriber. */
  get size (): number {
    return this.#topics.size
  }

  /** Resolves once the topic is live on the bus. */
  add (topic: string, subscriber: Subscriber): Promise<void> {
    let entry = this.#topics.get(topic)
    if (entry === undefined) {
      const subscribers = new Set<Subscriber>()
      const listener = (message: BusMessage): void => {
        const frame = new OutboundFrame(message.frame)
        for (const subscriber of subscribers) subscriber.deliver(frame, message)
      }
      entry = { subscribers, listener, ready: this.bus.subscribe(topic, listener) }
      this.#topics.set(topic, entry)
    }
    entry.subscribers.add(subscriber)
    return entry.ready
  }

  remove (topic: string, subscriber: Subscriber): Promise<void> {
    const entry = this.#topics.get(topic)
    if (entry === undefined || !entry.subscribers.delete(subscriber) || entry.subscribers.size > 0) {
      return Promise.resolve()
    }
    this.#topics.delete(topic)
    return this.bus.unsubscribe(topic, entry.listener)
  }
}
