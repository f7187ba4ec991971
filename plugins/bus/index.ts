import fp from 'fastify-plugin'
import mqemitter from 'mqemitter'
import type { FastifyInstance } from 'fastify'
import type { MQEmitter, Message } from 'mqemitter'
import { BusUnavailableError, InvalidOptionError } from '../errors.js'
import { positiveInteger, withTimeout } from '../util.js'

/** What travels on the bus: the client frame is serialized once, by the publisher. */
export interface BusMessage {
  topic: string
  /** The message id, also inside `frame`; kept apart so receivers need not parse the frame. */
  id: string
  /** The complete `message` frame as clients receive it. */
  frame: string
}

export type BusListener = (message: BusMessage) => void

/** The typed, reference-counted bus the other plugins use. */
export interface NotifyBus {
  /** Adds a listener; resolves once the topic is live (e.g. Redis acknowledged SUBSCRIBE). */
  subscribe (topic: string, listener: BusListener): Promise<void>
  /** Removes a listener; the topic's emitter subscription goes with its last listener. */
  unsubscribe (topic: string, listener: BusListener): Promise<void>
  /** Rejects with `FST_NOTIFY_BUS_UNAVAILABLE` (503) when the emitter cannot take it in time. */
  publish (message: BusMessage): Promise<void>
  /** Topics this instance holds an emitter subscription for. */
  topicCount (): number
}

export interface NotifyBusOptions {
  /**
   * Any MQEmitter-compatible emitter (mqemitter, mqemitter-redis, …). It is not closed by the
   * plugin unless `closeEmitter` is true.
   * @default an in-process `mqemitter`, closed on app close
   */
  emitter?: MQEmitter
  /** Close a given `emitter` when the app closes. @default false */
  closeEmitter?: boolean
  /** How long a publish may wait for the emitter before answering 503, in ms. @default 1000 */
  publishTimeout?: number
  /** How long closing the emitter may take before it is abandoned, in ms. @default 2000 */
  closeTimeout?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The notification bus (see `NotifyBus`). */
    notifyBus: NotifyBus
  }
}

interface TopicEntry {
  listeners: Set<BusListener>
  handler: (message: Message, done: () => void) => void
  ready: Promise<void>
}

function createBus (emitter: MQEmitter, publishTimeout: number, log: FastifyInstance['log']): NotifyBus {
  const topics = new Map<string, TopicEntry>()

  function createEntry (topic: string): TopicEntry {
    const listeners = new Set<BusListener>()
    // mqemitter passes `done` as the only argument to one-parameter listeners: keep two.
    const handler = (message: Message, done: () => void): void => {
      for (const listener of listeners) {
        try {
          listener(message as BusMessage)
        } catch (err) {
          log.error({ err, topic }, 'notify bus listener failed')
        }
      }
      done()
    }
    const ready = new Promise<void>((resolve) => { emitter.on(topic, handler, () => resolve()) })
    return { listeners, handler, ready }
  }

  return {
    subscribe (topic, listener) {
      let entry = topics.get(topic)
      if (entry === undefined) {
        entry = createEntry(topic)
        topics.set(topic, entry)
      }
      entry.listeners.add(listener)
      return entry.ready
    },
    unsubscribe (topic, listener) {
      const entry = topics.get(topic)
      if (entry === undefined || !entry.listeners.delete(listener) || entry.listeners.size > 0) {
        return Promise.resolve()
      }
      topics.delete(topic)
      return new Promise((resolve) => { emitter.removeListener(topic, entry.handler, () => resolve()) })
    },
    async publish (message) {
      let delivered: boolean
      try {
        delivered = await withTimeout(publishTimeout, (callback) => emitter.emit(message, callback))
      } catch (err) {
        throw new BusUnavailableError((err as Error).message)
      }
      if (!delivered) throw new BusUnavailableError(`no answer within ${publishTimeout} ms`)
    },
    topicCount: () => topics.size
  }
}

async function fastifyNotifyBus (app: FastifyInstance, opts: NotifyBusOptions): Promise<void> {
  const publishTimeout = positiveInteger('publishTimeout', opts.publishTimeout, 1000)
  const closeTimeout = positiveInteger('closeTimeout', opts.closeTimeout, 2000)
  if (opts.emitter !== undefined && typeof opts.emitter?.emit !== 'function') {
    throw new InvalidOptionError('emitter must be an MQEmitter-compatible object')
  }
  const emitter = opts.emitter ?? mqemitter()
  const ownsEmitter = opts.emitter === undefined || opts.closeEmitter === true

  app.decorate('notifyBus', createBus(emitter, publishTimeout, app.log))

  if (ownsEmitter) {
    app.addHook('onClose', async () => {
      const closed = await withTimeout(closeTimeout, (callback) => emitter.close(() => callback()))
      if (!closed) app.log.warn({ closeTimeout }, 'notify bus emitter did not close in time')
    })
  }
}

export const notifyBus = fp(fastifyNotifyBus, {
  fastify: '5.x',
  name: 'notify-edge-bus',
  decorators: {}
})
export default notifyBus
