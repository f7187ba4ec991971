import type { FastifyBaseLogger } from 'fastify'
import type { DeclaredStream } from '../declarations.js'
import { DeclarationMismatchError, UnknownPrefixError } from '../errors.js'
import { RedisHistoryStore, type RedisHistoryClient } from '../history/redis-store.js'
import { MessageIdGenerator } from '../message-id.js'
import { messageFrame, type MessageTemplate } from '../message.js'
import { perTopic, type Deliver, type Sent } from '../publishing.js'
import { presenceKeyPrefix, RedisPresenceReader, type RedisPresenceClient } from '../presence/redis-store.js'
import type { NotifyMetricsRecorder } from '../recorder.js'
import { connectionReady, endConnection, redisConnection, watchOutages, type RedisConnectionOptions } from '../redis.js'
import { manifestMismatch, readManifest, streamManifest, type ManifestClient } from '../stream-manifest.js'
import { within } from '../util.js'
import type { PublisherTransport } from './transport.js'
import { redisControlSender } from './control.js'
import { RedisRevocationStore, revokedKey } from '../control/redis-store.js'

/** The client the Redis transport may be given, e.g. `app.redis`: scripts, GET and SET. */
export type PublisherRedisClient = RedisHistoryClient & ManifestClient & RedisPresenceClient

/**
 * The edges' Redis: a URL (`rediss://` for TLS), ioredis options with an optional `url` (one
 * connection, closed on app close), or `{ client }` (never closed by the publisher).
 */
export type NotifyPublisherRedisOptions = RedisConnectionOptions | { client: PublisherRedisClient }

export interface RedisTransportOptions {
  redis: NotifyPublisherRedisOptions
  prefix: string
  streams: ReadonlyMap<string, DeclaredStream>
  timeout: number
  readyTimeout: number
  log: FastifyBaseLogger
  metrics: NotifyMetricsRecorder
}

// A verified manifest is trusted this long; then the next publish reads it again (an edge
// redeployed with other streams is noticed within it).
const RECHECK_MS = 30_000

/**
 * Publishes as an edge on the same Redis would: a stream with history through the history
 * store's append script (appended and PUBLISHed in one step, the id chosen by Redis), one
 * without through a script that PUBLISHes in the same wire format.
 */
export function redisTransport (opts: RedisTransportOptions): PublisherTransport {
  const { redis, prefix, timeout, log } = opts
  const given = typeof redis === 'object' && redis !== null && 'client' in redis
  const connection = given ? null : redisConnection(redis as RedisConnectionOptions, { enableOfflineQueue: false })
  const client: PublisherRedisClient = given ? redis.client : connection!
  if (connection !== null) watchOutages(connection, log, 'notify publisher (publishes answer 503 until it is back)')
  const store = new RedisHistoryStore({ client, keyPrefix: `${prefix}:history:`, publish: true, timeout })
  // Presence is read where the edges write it, as they read it, without adding a share of its own.
  const presence = new RedisPresenceReader({ client, keyPrefix: presenceKeyPrefix(prefix), timeout })
  const ids = new MessageIdGenerator()
  const mine = streamManifest(opts.streams)
  let verifiedAt = -Infinity

  /**
   * Compares with the edges' manifest; throws `FST_NOTIFY_DECLARATION_MISMATCH` when they differ,
   * and `FST_NOTIFY_UNKNOWN_PREFIX` when no edge ever declared streams under this prefix: a
   * mistyped `topicPrefix` would otherwise publish into topics no edge reads. The manifest outlives
   * the edges, so a publisher keeps publishing while they restart.
   */
  async function verify (): Promise<void> {
    const theirs = await readManifest(client, prefix, timeout)
    if (theirs === null) throw new UnknownPrefixError(prefix)
    const mismatch = manifestMismatch(mine, theirs)
    if (mismatch !== null) throw new DeclarationMismatchError(mismatch)
    verifiedAt = Date.now()
  }

  async function send (stream: DeclaredStream, topic: string, template: MessageTemplate): Promise<Sent> {
    if (stream.history !== undefined) {
      const { id, receivers } = await store.append(topic, template, stream.history)
      return { id, receivers: receivers ?? null }
    }
    const { id, ts } = ids.next()
    return { id, receivers: await store.publish({ topic, id, frame: messageFrame(template, id, ts) }) }
  }

  const deliverEach = perTopic(send, opts.metrics)
  const deliver: Deliver = async (checked) => {
    if (Date.now() - verifiedAt > RECHECK_MS) await verify()
    return deliverEach(checked)
  }

  return {
    deliver,
    presence,
    control: redisControlSender(new RedisRevocationStore({ client, key: revokedKey(prefix), timeout }), (message) => store.publish(message), prefix),
    async ready () {
      if (connection !== null && await within(opts.readyTimeout, connectionReady(connection)) === null) {
        log.warn({ readyTimeout: opts.readyTimeout }, 'notify publisher: Redis not reachable; declarations are checked at the first publish')
        return
      }
      try {
        await verify()
      } catch (err) {
        if ((err as { code?: string }).code === 'FST_NOTIFY_DECLARATION_MISMATCH') throw err
        log.warn({ err }, 'notify publisher: declarations not checked; they are at the first publish, which fails until they are')
      }
    },
    async close () {
      if (connection !== null) await endConnection(connection, timeout)
    }
  }
}
