import { randomUUID } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import mqemitterRedis from 'mqemitter-redis'
import type { MQEmitter } from 'mqemitter'
import type { FastifyBaseLogger } from 'fastify'
import { BusUnavailableError, InvalidOptionError } from '../errors.js'
import {
  WriteCoalescer, connectionReady, endConnection, redisConnection,
  type RedisClientLike, type RedisConnectionLike, type RedisConnectionOptions, type RedisConnectionOverrides
} from '../redis.js'
import { within } from '../util.js'
import { ClusterEmitter, createClusterEmitter, type RedisClusterOptions } from './cluster-emitter.js'
import { LeanRedisEmitter, type LeanRedisConnection } from './lean-emitter.js'
import { encodeBusPacket, type BusPacketMessage } from './packet.js'

/**
 * How the bus reaches Redis: a URL (`redis://`, `rediss://` for TLS), ioredis options (with an
 * optional `url`; with `sentinels` and `name` through Sentinel), `{ client }` to duplicate an
 * existing client's connection settings, or `{ cluster: [{ host, port }, …], …ClusterOptions }`
 * for Redis Cluster with sharded pub/sub (`ClusterEmitter`).
 */
export type NotifyBusRedisOptions = RedisConnectionOptions | { client: RedisClientLike } | RedisClusterOptions

/** mqemitter-redis as this file uses it: its typings leave out `state` and the connections. */
interface MQEmitterRedis extends MQEmitter {
  state: EventEmitter
  pubConn: RedisConnectionLike & { publish (channel: string, message: Buffer): Promise<number> }
  subConn: RedisConnectionLike
  /** Set on an `MQEmitterRedisPrefix`: prepended to every channel and topic. */
  _pubSubPrefix?: string
}

/** What the bus plugin needs to run on Redis. */
export interface RedisBus {
  emitter: MQEmitter
  /**
   * PUBLISHes in mqemitter-redis's format and resolves with Redis's reply: how many connections
   * (with exact topics: instances) subscribe to the channel.
   */
  publish (message: BusPacketMessage): Promise<number>
  /** ioredis status of the publishing and the subscribing connection. */
  status (): { pub: string, sub: string }
  /** ioredis status of the publishing connection alone (no object: read on every publish). */
  pubStatus (): string
  /** Resolves once both connections are ready; rejects with `FST_NOTIFY_BUS_UNAVAILABLE` after `timeout` ms. */
  ready (timeout: number): Promise<void>
  /**
   * Ends what the bus owns (connections it built: QUIT when connected, cut off after `timeout` ms
   * or at once when Redis is away) and removes its listeners.
   */
  release (timeout: number): Promise<void>
  /** See `NotifyBus.onResubscribe`: after every reconnect of the subscribing connection. */
  onResubscribe (listener: () => void): () => void
}

/** ioredis (5 and 6) answers PING in subscriber mode, after every command sent before it. */
type Pingable = RedisConnectionLike & { ping (): Promise<unknown> }

// A SUBSCRIBE made while Redis is away waits for it, however long, instead of being dropped.
const SUB: RedisConnectionOverrides = { lazyConnect: false, maxRetriesPerRequest: null }
// A PUBLISH made while Redis is away fails at once (503) instead of waiting in the offline queue.
// No auto-pipelining: it keeps one batch in flight and holds every later PUBLISH until that
// batch's reply, so on a busy machine publishes queued for seconds (bench, 5,000 msg/s: p50
// 1.5-3 s and timed-out publishes with it, under 60 ms without; docs/benchmarks.md).
// A PUBLISH in flight when the connection drops is not resent after the reconnect: its caller had
// its 503 (the timeout) long before, and would retry a message that then also went out late.
const PUB: RedisConnectionOverrides = { lazyConnect: false, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, enableAutoPipelining: false }

/** Whether `options` name a Redis Cluster. */
export function isClusterOptions (options: unknown): options is RedisClusterOptions {
  return typeof options === 'object' && options !== null && 'cluster' in options
}

function connections (opts: RedisConnectionOptions | { client: RedisClientLike }): { sub: RedisConnectionLike, pub: RedisConnectionLike } {
  if (typeof opts === 'object' && opts !== null && 'client' in opts) {
    if (typeof opts.client?.duplicate !== 'function') throw new InvalidOptionError('redis.client must be an ioredis client')
    return { sub: opts.client.duplicate(SUB), pub: opts.client.duplicate(PUB) }
  }
  return { sub: redisConnection(opts, SUB), pub: redisConnection(opts, PUB) }
}

/** Whether `emitter` is an mqemitter-redis, whose connections and `state` need watching. */
export function isMQEmitterRedis (emitter: MQEmitter): boolean {
  const candidate = emitter as Partial<MQEmitterRedis>
  return typeof candidate.state?.on === 'function' && candidate.pubConn !== undefined && candidate.subConn !== undefined
}

/** Which emitter carries the bus on one Redis (see `NotifyBusOptions.redisEmitter`). */
export type RedisEmitterKind = 'mqemitter-redis' | 'lean'

/**
 * mqemitter-redis (or, with `kind` 'lean', `LeanRedisEmitter`) over two connections built from
 * `options` (never from `connectionString`, which drops every other option).
 */
export function createRedisBus (options: NotifyBusRedisOptions, log: FastifyBaseLogger, kind: RedisEmitterKind, flushInterval: number): RedisBus {
  if (isClusterOptions(options)) return watch(createClusterEmitter(options) as unknown as MQEmitterRedis, log, true, true, flushInterval)
  const { sub, pub } = connections(options)
  if (kind === 'lean') return watch(new LeanRedisEmitter(pub as LeanRedisConnection, sub as LeanRedisConnection) as unknown as MQEmitterRedis, log, true, true, flushInterval)
  // The connections are ioredis 5 or 6; mqemitter-redis only calls what RedisConnectionLike names.
  const emitter = mqemitterRedis({ subConn: sub, pubConn: pub } as unknown as Parameters<typeof mqemitterRedis>[0])
  return watch(emitter as unknown as MQEmitterRedis, log, true, true, flushInterval)
}

/** Watches a given mqemitter-redis; ends its connections on release only when `closeEmitter`. */
export function watchRedisEmitter (emitter: MQEmitter, log: FastifyBaseLogger, closeEmitter: boolean, flushInterval: number): RedisBus {
  return watch(emitter as MQEmitterRedis, log, false, closeEmitter, flushInterval)
}

/**
 * Its `state` emits 'error' on every Redis connection failure and would crash the process
 * unlisted: errors are logged here, once per outage at warn level.
 */
function watch (emitter: MQEmitterRedis, log: FastifyBaseLogger, built: boolean, close: boolean, flushInterval: number): RedisBus {
  const { pubConn: pub, subConn: sub } = emitter
  const writes = new WriteCoalescer(pub, flushInterval)
  let outage = false
  let releasing = false
  const onError = (err: unknown): void => {
    if (releasing) return
    if (outage) {
      log.debug({ err }, 'notify bus: Redis still unreachable')
      return
    }
    outage = true
    log.warn({ err }, 'notify bus: Redis connection lost; publishes answer 503 until it is back')
  }
  const onReady = (): void => {
    if (!outage || pub.status !== 'ready' || sub.status !== 'ready') return
    outage = false
    log.info('notify bus: Redis connection restored')
  }
  // ioredis emits 'ready' on the next tick after writing its automatic re-SUBSCRIBE, before Redis
  // has answered it: a PING sent now is answered after it, so its reply means every channel is
  // live again. The first 'ready' is the initial connection: nothing could be missed before it.
  const resubscribed = new Set<() => void>()
  let subscribedOnce = sub.status === 'ready'
  const onSubReady = (): void => {
    if (!subscribedOnce) {
      subscribedOnce = true
      return
    }
    ;(sub as Pingable).ping().then(() => {
      log.info('notify bus: Redis subscriptions restored; checking for lost messages')
      for (const listener of resubscribed) listener()
    }, (err: unknown) => {
      // Lost again before it was live: the next 'ready' tries again.
      log.debug({ err }, 'notify bus: Redis subscriber dropped while re-subscribing')
    })
  }
  // The cluster emitter announces its re-subscriptions itself: a shard's failover never makes the
  // cluster client 'ready' again.
  const announces = emitter instanceof ClusterEmitter
  const onResubscribed = (): void => {
    log.info('notify bus: Redis Cluster subscriptions restored; checking for lost messages')
    for (const listener of resubscribed) listener()
  }
  emitter.state.on('error', onError)
  pub.on('ready', onReady)
  sub.on('ready', onReady)
  if (announces) emitter.state.on('resubscribed', onResubscribed)
  else sub.on('ready', onSubReady)

  const channelPrefix = typeof emitter._pubSubPrefix === 'string' ? emitter._pubSubPrefix : ''
  // Receivers drop a packet id seen in the last minute, so it must be unique per message. A
  // message id alone is not: without history each publisher makes its own, and two instances
  // publishing to one topic in the same millisecond make the same one. This bus's own id is added.
  const publisher = randomUUID()
  return {
    emitter,
    publish (message) {
      if (announces) return (emitter as unknown as ClusterEmitter).publish(message)
      const channel = channelPrefix + message.topic
      const packet = encodeBusPacket(`${channel} ${publisher} ${message.id}`, channelPrefix === '' ? message : { ...message, topic: channel })
      writes.hold()
      return pub.publish(channel, packet)
    },
    status: () => ({ pub: pub.status, sub: sub.status }),
    pubStatus: () => pub.status,
    async ready (timeout) {
      const ready = await within(timeout, Promise.all([connectionReady(pub), connectionReady(sub)]))
      if (ready === null) throw new BusUnavailableError(`Redis not ready within ${timeout} ms (pub: ${pub.status}, sub: ${sub.status})`)
    },
    async release (timeout) {
      releasing = true
      writes.flush()
      // Not mqemitter-redis's close(): it waits for both connections' 'end', forever when Redis is
      // away, and its QUIT rejects unhandled (crashing the process) when Redis does not answer.
      if (close) await Promise.all([endConnection(pub, timeout), endConnection(sub, timeout)])
      // An emitter built here keeps its listener: a late connection error must not crash.
      if (!built) emitter.state.removeListener('error', onError)
      pub.removeListener('ready', onReady)
      sub.removeListener('ready', onReady)
      sub.removeListener('ready', onSubReady)
      emitter.state.removeListener('resubscribed', onResubscribed)
      resubscribed.clear()
    },
    onResubscribe (listener) {
      resubscribed.add(listener)
      return () => { resubscribed.delete(listener) }
    }
  }
}
