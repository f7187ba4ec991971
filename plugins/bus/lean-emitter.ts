import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import type { MQEmitter, Message } from 'mqemitter'
import { UnsupportedTopicError } from '../errors.js'
import { afterSubscription, type RedisConnectionLike } from '../redis.js'
import { decodePacket, encodePacket, readBusPacket, type PacketValue } from './packet.js'

type Listener = (message: Message, done: () => void) => void

/** The ioredis calls this emitter makes. */
export interface LeanRedisConnection extends RedisConnectionLike {
  subscribe (channel: string): Promise<unknown>
  unsubscribe (channel: string): Promise<unknown>
  publish (channel: string, message: Buffer): Promise<number>
}

const WILDCARD = /[+#]/
const done = (): void => {}

/**
 * An MQEmitter on one Redis's pub/sub, in mqemitter-redis's wire format, for exact topics only
 * (the edge's): one `SUBSCRIBE` per topic with listeners, and a message goes straight from the
 * channel to that topic's listeners. What it leaves out of mqemitter-redis is what exact topics
 * do not need: the msgpack-lite decoder (a small one of its own), the de-duplication cache (with
 * no pattern subscription a message arrives once), and topic matching (the channel is the topic).
 * In the cross-instance benchmark that was a quarter of a receiving instance's JavaScript time
 * (docs/benchmarks.md). Instances on it and on mqemitter-redis read each other's messages.
 *
 * `state` emits `'error'` for connection errors and undecodable packets, as mqemitter-redis does.
 */
export class LeanRedisEmitter implements MQEmitter {
  readonly pubConn: LeanRedisConnection
  readonly subConn: LeanRedisConnection
  readonly state: EventEmitter = new EventEmitter()
  readonly #topics = new Map<string, Listener[]>()
  #closed = false

  constructor (pub: LeanRedisConnection, sub: LeanRedisConnection) {
    this.pubConn = pub
    this.subConn = sub
    sub.on('messageBuffer', (_channel: unknown, payload: unknown) => { this.#receive(payload as Buffer) })
    for (const connection of [pub, sub]) connection.on('error', (err: unknown) => this.state.emit('error', err))
  }

  #receive (payload: Buffer): void {
    if (this.#closed) return
    let message: Message
    try {
      message = readBusPacket(payload) ?? (decodePacket(payload) as { msg: Message }).msg
    } catch (err) {
      this.state.emit('error', err)
      return
    }
    const listeners = typeof message?.topic === 'string' ? this.#topics.get(message.topic) : undefined
    if (listeners === undefined) return
    for (const listener of listeners) listener(message, done)
  }

  // No queue of its own: a message is handed to its listeners as it arrives.
  get current (): number { return 0 }
  get concurrent (): number { return Infinity }

  on (topic: string, listener: Listener, callback?: () => void): this {
    if (WILDCARD.test(topic)) throw new UnsupportedTopicError(`${topic}: the lean Redis emitter takes exact topics only`)
    const listeners = this.#topics.get(topic)
    if (listeners !== undefined) {
      // A new array, here and on removal: a delivery iterating the old one is not disturbed.
      this.#topics.set(topic, [...listeners, listener])
      if (callback !== undefined) setImmediate(callback)
      return this
    }
    this.#topics.set(topic, [listener])
    afterSubscription(this.subConn.subscribe(topic), this.state, callback)
    return this
  }

  removeListener (topic: string, listener: Listener, callback?: () => void): void {
    const listeners = this.#topics.get(topic)
    const index = listeners?.indexOf(listener) ?? -1
    if (listeners === undefined || index === -1 || listeners.length > 1) {
      if (index !== -1) this.#topics.set(topic, listeners!.filter((_, i) => i !== index))
      if (callback !== undefined) setImmediate(callback)
      return
    }
    this.#topics.delete(topic)
    afterSubscription(this.subConn.unsubscribe(topic), this.state, callback)
  }

  emit (message: Message, callback?: (error?: Error) => void): void {
    if (this.#closed) {
      callback?.(new Error('the lean Redis emitter is closed'))
      return
    }
    // Packet ids only need to be unique: mqemitter-redis receivers de-duplicate by them.
    const packet = encodePacket({ id: randomUUID(), msg: message as PacketValue })
    this.pubConn.publish(message.topic, packet).then(() => callback?.(), (err: Error) => callback?.(err))
  }

  /** Stops delivery; the connections are their creator's to end. */
  close (callback: () => void): void {
    this.#closed = true
    this.#topics.clear()
    setImmediate(callback)
  }
}
