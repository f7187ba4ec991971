import fp from 'fastify-plugin'
import mqemitter from 'mqemitter'
import type { FastifyInstance } from 'fastify'
import type { MQEmitter, Message } from 'mqemitter'
import { BusUnavailableError, InvalidOptionError } from '../errors.js'
import { outcomeUnknown } from '../outcome.js'
import { Deadlines, integerBetween, positiveInteger, withTimeout } from '../util.js'
import { createRedisBus, isMQEmitterRedis, watchRedisEmitter, type NotifyBusRedisOptions, type RedisBus, type RedisEmitterKind } from './redis-emitter.js'

export type { NotifyBusRedisOptions, RedisEmitterKind } from './redis-emitter.js'
export { LeanRedisEmitter } from './lean-emitter.js'
export { ClusterEmitter, createClusterEmitter, type RedisClusterOptions } from './cluster-emitter.js'
export type { RedisClientLike, RedisConnectionLike, RedisConnectionOptions, RedisConnectionOverrides } from '../redis.js'

/** What travels on the bus: the client frame is serialized once, by the publisher. */
export interface BusMessage {
  topic: string
  /** The message id, also inside `frame`; kept apart so receivers need not parse the frame. */
  id: string
  /** The complete `message` frame as clients receive it. */
  frame: string
  /**
   * The id of the message before this one in its topic's history, `''` for the first; absent
   * when unknown (a stream without history). A receiver that delivered another id last has a hole.
   */
  prev?: string
  /** The W3C `traceparent` of the publish span, when the publishing edge traces (docs/observability.md). */
  trace?: string
}

export type BusListener = (message: BusMessage) => void

/** The typed, reference-counted bus the other plugins use. */
export interface NotifyBus {
  /**
   * Adds a listener; resolves once the topic is live (e.g. Redis acknowledged SUBSCRIBE). An
   * `internal` topic (the control plugin's) is left out of `topicCount()`.
   */
  subscribe (topic: string, listener: BusListener, internal?: boolean): Promise<void>
  /** Removes a listener; the topic's emitter subscription goes with its last listener. */
  unsubscribe (topic: string, listener: BusListener): Promise<void>
  /**
   * Resolves with the number of instances that hold a subscription to the message's topic at
   * publish time (on Redis: PUBLISH's reply; in-process: 1 or 0), or null when the emitter
   * cannot tell (a given non-Redis emitter). Rejects with `FST_NOTIFY_BUS_UNAVAILABLE` (503)
   * when the emitter cannot take it in time.
   */
  publish (message: BusMessage): Promise<number | null>
  /** Stream topics this instance holds an emitter subscription for (internal ones left out). */
  topicCount (): number
  /** The bus's state, for health checks. */
  health (): BusHealth
  /**
   * Calls `listener` each time the bus holds its topics again after losing its subscription (on
   * Redis: a reconnect or a failover, once the re-SUBSCRIBE has landed): whatever was published
   * meanwhile may never arrive. Never on the in-process bus. Returns the function that removes it.
   */
  onResubscribe (listener: () => void): () => void
}

export interface BusHealth {
  /** Whether the bus can publish and receive now (on Redis: both connections ready). */
  healthy: boolean
  /** `memory`: the default in-process mqemitter; `redis`: mqemitter-redis; `emitter`: another given emitter. */
  backend: 'memory' | 'redis' | 'emitter'
  /** ioredis status of the publishing and subscribing connections, on Redis. */
  redis?: { pub: string, sub: string }
}

export interface NotifyBusOptions {
  /**
   * Any MQEmitter-compatible emitter (mqemitter, mqemitter-redis, …). It is not closed by the
   * plugin unless `closeEmitter` is true.
   * @default an in-process `mqemitter`, closed on app close
   */
  emitter?: MQEmitter
  /**
   * Close a given `emitter` when the app closes (for an mqemitter-redis: QUIT both connections,
   * cut off after `closeTimeout`). @default false
   */
  closeEmitter?: boolean
  /**
   * Runs the bus on Redis through mqemitter-redis: a URL (`rediss://` for TLS), ioredis options
   * (with an optional `url`; TLS and every other option apply to both connections), or
   * `{ client }` to `duplicate()` an existing ioredis client such as `app.redis`. The bus opens
   * two connections, one SUBSCRIBE per topic its sockets want, and closes them on app close.
   * Not with `emitter`.
   */
  redis?: NotifyBusRedisOptions
  /**
   * On one Redis (not a Cluster, which has its own), what carries the bus: `'mqemitter-redis'`,
   * or `'lean'`, this package's `LeanRedisEmitter`: the same wire format (instances on either
   * read each other), exact topics only, and less work per received message
   * (docs/benchmarks.md). @default 'mqemitter-redis'
   */
  redisEmitter?: RedisEmitterKind
  /**
   * On one Redis, write coalescing of the publishing connection, in ms: publishes made less than
   * this long after its last write wait until that much has passed, then go to Redis in one write
   * (and reach every receiving instance in one read). A publish after a quiet interval goes at the
   * end of its event-loop turn, so a lone notification waits for no timer; under a steady stream
   * each waits this long at most. `0`: each turn's publishes go at its end. Not on Redis Cluster,
   * and not for streams with history on Redis, whose append carries the publish.
   * @default 2 with `redis`; 0 on a given mqemitter-redis `emitter`, whose connection others may share
   */
  flushInterval?: number
  /** On Redis, how long registration waits for both connections before failing with `FST_NOTIFY_BUS_UNAVAILABLE`, in ms. @default 5000 */
  readyTimeout?: number
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

/** Puts a message on the emitter; resolves with its receivers (see `NotifyBus.publish`). */
type Send = (message: BusMessage, topics: ReadonlyMap<string, unknown>) => Promise<number | null>

/** Through the emitter's emit(), which says nothing of receivers: `known` is the local answer, if any. */
function emitted (emitter: MQEmitter, known: boolean): Send {
  return async (message, topics) => {
    // Read before emitting: the answer is about the moment of publishing.
    const receivers = known ? (topics.has(message.topic) ? 1 : 0) : null
    await new Promise<void>((resolve, reject) => emitter.emit(message, (err) => err ? reject(err) : resolve()))
    return receivers
  }
}

/** Where a bus learns that its emitter re-subscribed; the in-process emitter never does. */
export type ResubscribeSource = (listener: () => void) => () => void
const NEVER: ResubscribeSource = () => () => {}

/** What a bus tells of its emitter's connection. */
interface BusState {
  health (): BusHealth
  /** Why a publish cannot go out now (the publishing connection's status), or null when it can. */
  down (): string | null
}

const unavailable = (err: unknown): never => {
  throw new BusUnavailableError((err as Error).message)
}

function createBus (emitter: MQEmitter, send: Send, publishTimeout: number, state: BusState, log: FastifyInstance['log'], onResubscribe = NEVER): NotifyBus {
  const topics = new Map<string, TopicEntry>()
  const internal = new Set<string>()
  const deadlines = new Deadlines(publishTimeout)
  // Sent and not answered in time: the PUBLISH may still go out, so the outcome is unknown.
  const answered = (sent: { value: number | null } | null, work: Promise<number | null>): number | null => {
    if (sent === null) throw outcomeUnknown(`bus: no answer within ${publishTimeout} ms`, work)
    return sent.value
  }

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
    subscribe (topic, listener, isInternal = false) {
      if (isInternal) internal.add(topic)
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
      internal.delete(topic)
      // Gone locally at once; on Redis the UNSUBSCRIBE waits for a connection, so a socket closed
      // during an outage (or a drain) must not wait for it longer than a publish would.
      return withTimeout(publishTimeout, (callback) => emitter.removeListener(topic, entry.handler, () => callback())).then(() => {})
    },
    // Not async, and no health() object: this is every message's path (a turn of promises less).
    publish (message) {
      // On Redis, a publish while the connection is down would wait in ioredis's offline queue.
      const down = state.down()
      if (down !== null) return Promise.reject(new BusUnavailableError(`Redis is not connected (${down})`))
      const work = send(message, topics)
      return deadlines.race(work).then((sent) => answered(sent, work), unavailable)
    },
    topicCount: () => topics.size - internal.size,
    health: state.health,
    onResubscribe
  }
}

// The default `flushInterval` of the bus's publishing connection, in ms: the sockets' own default,
// and at 5,000 msg/s between two instances about a tenth less CPU than 0, for a p50 of about 1.4 ms
// and a p99 of 2.3-3.4 ms in most runs (docs/benchmarks.md).
const BUS_FLUSH_INTERVAL = 2

async function fastifyNotifyBus (app: FastifyInstance, opts: NotifyBusOptions): Promise<void> {
  const publishTimeout = positiveInteger('publishTimeout', opts.publishTimeout, 1000)
  const closeTimeout = positiveInteger('closeTimeout', opts.closeTimeout, 2000)
  const readyTimeout = positiveInteger('readyTimeout', opts.readyTimeout, 5000)
  if (opts.emitter !== undefined && typeof opts.emitter?.emit !== 'function') {
    throw new InvalidOptionError('emitter must be an MQEmitter-compatible object')
  }
  if (opts.emitter !== undefined && opts.redis !== undefined) {
    throw new InvalidOptionError('give emitter or redis, not both')
  }

  let redis: RedisBus | null = null
  const redisEmitter = opts.redisEmitter ?? 'mqemitter-redis'
  if (redisEmitter !== 'mqemitter-redis' && redisEmitter !== 'lean') throw new InvalidOptionError(`redisEmitter must be 'mqemitter-redis' or 'lean', got ${String(redisEmitter)}`)
  // A given emitter's connection may carry others' publishes too: held past a turn only when asked.
  const flushInterval = integerBetween('flushInterval', opts.flushInterval, opts.redis === undefined ? 0 : BUS_FLUSH_INTERVAL, 0, 1000)
  // A held publish must have time left to be answered.
  if (flushInterval >= publishTimeout) throw new InvalidOptionError(`flushInterval (${flushInterval} ms) must be shorter than publishTimeout (${publishTimeout} ms)`)
  if (opts.redis !== undefined) redis = createRedisBus(opts.redis, app.log, redisEmitter, flushInterval)
  else if (opts.emitter !== undefined && isMQEmitterRedis(opts.emitter)) redis = watchRedisEmitter(opts.emitter, app.log, opts.closeEmitter === true, flushInterval)

  if (redis !== null) {
    const bus = redis
    try {
      await bus.ready(readyTimeout)
    } catch (err) {
      await bus.release(closeTimeout)
      throw err
    }
    app.addHook('onClose', () => bus.release(closeTimeout))
    const state: BusState = {
      health () {
        const status = bus.status()
        return { healthy: status.pub === 'ready' && status.sub === 'ready', backend: 'redis', redis: status }
      },
      down () {
        const status = bus.pubStatus()
        return status === 'ready' ? null : status
      }
    }
    app.decorate('notifyBus', createBus(bus.emitter, (message) => bus.publish(message), publishTimeout, state, app.log, bus.onResubscribe))
    return
  }

  const emitter = opts.emitter ?? mqemitter()
  const health: BusHealth = Object.freeze({ healthy: true, backend: opts.emitter === undefined ? 'memory' : 'emitter' })
  // The default emitter lives in this process only: its receivers are this bus's topics.
  app.decorate('notifyBus', createBus(emitter, emitted(emitter, opts.emitter === undefined), publishTimeout, { health: () => health, down: () => null }, app.log))

  if (opts.emitter === undefined || opts.closeEmitter === true) {
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
