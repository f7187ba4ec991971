import { EventEmitter } from 'node:events'
import { Cluster, type ClusterNode, type ClusterOptions } from 'ioredis'
import mqemitter, { type MQEmitter, type Message } from 'mqemitter'
import { InvalidOptionError, UnsupportedTopicError } from '../errors.js'
import { afterSubscription } from '../redis.js'
import { shardedChannel } from '../topics.js'

type Listener = (message: Message, done: () => void) => void

/** Redis Cluster for the edge: seed nodes plus any ioredis `ClusterOptions` (`redisOptions` for passwords and TLS). */
export type RedisClusterOptions = ClusterOptions & { cluster: ClusterNode[] }

const WILDCARD = /[+#]/

/** ioredis's sharded subscribers, one per master; internal to ioredis 5, so every step is checked. */
interface ShardedSubscriberGroup {
  shardedSubscribers?: Map<string, {
    subscriberStatus?: string
    getInstance (): { status: string, ping (): Promise<unknown> } | null
  }>
}

/**
 * An MQEmitter on Redis Cluster's sharded pub/sub, on two cluster clients as mqemitter-redis has
 * two connections: `subConn` with ioredis's sharded subscribers (one connection per master), and
 * `pubConn`. A topic with local listeners holds one `SSUBSCRIBE` of its sharded channel, on the
 * connection to the master that owns the channel's slot; `emit` `SPUBLISH`es there, so a message
 * travels only to its shard and on to the instances that want it. Exact topics only: sharded
 * pub/sub has no patterns.
 *
 * `state` emits `'error'` for connection and subscription errors (as mqemitter-redis does) and
 * `'resubscribed'` each time ioredis has re-subscribed after a node was lost or replaced, once
 * Redis has answered the re-subscriptions.
 */
export class ClusterEmitter implements MQEmitter {
  readonly pubConn: Cluster
  readonly subConn: Cluster
  readonly state: EventEmitter = new EventEmitter()
  readonly #local = mqemitter()
  readonly #topics = new Map<string, number>()
  #closed = false

  constructor (pub: Cluster, sub: Cluster) {
    this.pubConn = pub
    this.subConn = sub
    sub.on('smessage', (channel: string, payload: string) => {
      let message: Message
      try {
        message = JSON.parse(payload)
      } catch (err) {
        this.state.emit('error', err)
        return
      }
      if (shardedChannel(message.topic) === channel) this.#local.emit(message)
    })
    sub.on('subscribersReady', () => { this.#confirmResubscribed() })
    for (const cluster of [pub, sub]) cluster.on('error', (err: Error) => this.state.emit('error', err))
  }

  /**
   * ioredis also says 'subscribersReady' when a subscriber it just started failed (its master is
   * dead, no replica promoted yet): live only when every started subscriber is connected, and a
   * PING on each is answered, after the SSUBSCRIBEs sent before it.
   */
  async #confirmResubscribed (): Promise<void> {
    const group = (this.subConn as unknown as { shardedSubscribers?: ShardedSubscriberGroup }).shardedSubscribers
    const connections = []
    for (const subscriber of group?.shardedSubscribers?.values() ?? []) {
      if (subscriber.subscriberStatus === 'idle') continue
      const connection = subscriber.getInstance()
      if (subscriber.subscriberStatus !== 'connected' || connection?.status !== 'ready') return
      connections.push(connection)
    }
    try {
      await Promise.all(connections.map((connection) => connection.ping()))
    } catch (err) {
      // Lost again before it was live: the next 'subscribersReady' tries again.
      this.state.emit('error', err)
      return
    }
    this.state.emit('resubscribed')
  }

  get current (): number { return this.#local.current }
  // mqemitter's typings name it `concurrent`; mqemitter itself keeps `concurrency`.
  get concurrent (): number { return (this.#local as unknown as { concurrency: number }).concurrency }

  on (topic: string, listener: Listener, callback?: () => void): this {
    if (WILDCARD.test(topic)) throw new UnsupportedTopicError(`${topic}: sharded pub/sub takes exact topics only`)
    this.#local.on(topic, listener)
    const count = this.#topics.get(topic) ?? 0
    this.#topics.set(topic, count + 1)
    if (count > 0) {
      if (callback !== undefined) setImmediate(callback)
      return this
    }
    afterSubscription(this.subConn.ssubscribe(shardedChannel(topic)), this.state, callback)
    return this
  }

  removeListener (topic: string, listener: Listener, callback?: () => void): void {
    this.#local.removeListener(topic, listener)
    const count = this.#topics.get(topic)
    if (count === undefined || count > 1) {
      if (count !== undefined) this.#topics.set(topic, count - 1)
      if (callback !== undefined) setImmediate(callback)
      return
    }
    this.#topics.delete(topic)
    afterSubscription(this.subConn.sunsubscribe(shardedChannel(topic)), this.state, callback)
  }

  emit (message: Message, callback?: (error?: Error) => void): void {
    if (this.#closed) {
      callback?.(new Error('the cluster emitter is closed'))
      return
    }
    this.publish(message).then(() => callback?.(), (err: Error) => callback?.(err))
  }

  /** SPUBLISHes `message`; resolves with how many connections on its shard subscribe to its topic. */
  publish (message: Message): Promise<number> {
    return this.pubConn.spublish(shardedChannel(message.topic), JSON.stringify(message)) as Promise<number>
  }

  /** Stops local delivery; the cluster clients are their creator's to end. */
  close (callback: () => void): void {
    this.#closed = true
    this.#local.close(callback)
  }
}

function validPort (port: unknown): boolean {
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536
}

/** A cluster client for the edge, from `RedisClusterOptions`, with `overrides` winning. */
export function redisCluster (options: RedisClusterOptions, overrides: ClusterOptions): Cluster {
  const { cluster: nodes, ...rest } = options
  if (!Array.isArray(nodes) || nodes.length === 0) throw new InvalidOptionError('redis.cluster must be a non-empty array of { host, port } seed nodes')
  for (const node of nodes as unknown[]) {
    const { host, port } = (node ?? {}) as { host?: unknown, port?: unknown }
    if (typeof node !== 'object' || node === null || (host !== undefined && typeof host !== 'string') || !validPort(port)) {
      throw new InvalidOptionError(`redis.cluster: ${JSON.stringify(node)} is not { host, port }`)
    }
  }
  return new Cluster(nodes, { ...rest, ...overrides })
}

/**
 * What the edge's cluster clients that publish and store set: no retry of a command whose shard
 * connection closed (ioredis would retry it through the failover, for seconds), so a command to a
 * failed shard answers 503 at once and the caller retries. The offline queue stays: with it off,
 * ioredis refuses commands to a node whose connection is still being opened (every node's first
 * commands, at start or after a topology change).
 */
export const FAIL_FAST: ClusterOptions = { retryDelayOnFailover: 0, retryDelayOnClusterDown: 0 }

// Subscriptions wait for the cluster, however long; publishes fail at once (503) while their shard
// is away, and within the publish timeout while the whole cluster is.
const SUB: ClusterOptions = { shardedSubscribers: true, lazyConnect: false }
const PUB: ClusterOptions = { ...FAIL_FAST, lazyConnect: false, enableAutoPipelining: false }

/** A `ClusterEmitter` on two cluster clients of its own, built from `options`. */
export function createClusterEmitter (options: RedisClusterOptions): ClusterEmitter {
  const sub = redisCluster(options, SUB)
  return new ClusterEmitter(redisCluster(options, PUB), sub)
}
