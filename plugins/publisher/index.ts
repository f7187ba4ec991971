import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { declareStreams, type StreamDefinition } from '../declarations.js'
import { InvalidOptionError, PresenceDisabledError } from '../errors.js'
import { offlineHook, publisherOf, type Notify, type OnOffline } from '../publishing.js'
import { metricsOf } from '../recorder.js'
import { topicPrefixOption } from '../topics.js'
import { positiveInteger } from '../util.js'
import { httpTransport, type NotifyPublisherHttpOptions } from './http-transport.js'
import { redisTransport, type NotifyPublisherRedisOptions } from './redis-transport.js'
import type { PublisherTransport } from './transport.js'

export type { NotifyPublisherHttpOptions } from './http-transport.js'
export type { NotifyPublisherRedisOptions, PublisherRedisClient } from './redis-transport.js'

export interface NotifyPublisherOptions {
  /** The streams, declared as the edge declares them (share the module). */
  streams: readonly StreamDefinition[]
  /** The edge's topic prefix (Redis transport). @default 'notify' */
  topicPrefix?: string
  /** Most users one publish may address. @default 1000 */
  maxUsersPerPublish?: number
  /**
   * Publish straight onto the edges' Redis, bus and history, as an edge would (no HTTP hop): a
   * URL, ioredis options, or `{ client }`. Give this or `http`.
   */
  redis?: NotifyPublisherRedisOptions
  /** Publish through an edge's `POST /notifications`. Give this or `redis`. */
  http?: NotifyPublisherHttpOptions
  /** How long a publish may take before it fails with `FST_NOTIFY_BUS_UNAVAILABLE` (503), in ms. @default 1000 */
  timeout?: number
  /** How long start-up waits for Redis before leaving the declaration check to the first publish, in ms. @default 5000 */
  readyTimeout?: number
  /** As the edge's `onOffline`: the users of a private publish with no subscribed connection anywhere. */
  onOffline?: OnOffline
}

/**
 * `app.notify` without an edge in this process: the same `publish()`, checked against the same
 * declarations, sent to the edges over Redis or HTTP (SPEC section 11).
 */
async function fastifyNotifyPublisher (app: FastifyInstance, opts: NotifyPublisherOptions): Promise<void> {
  const prefix = topicPrefixOption(opts.topicPrefix)
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const timeout = positiveInteger('timeout', opts.timeout, 1000)
  const readyTimeout = positiveInteger('readyTimeout', opts.readyTimeout, 5000)
  const streams = declareStreams(opts.streams, prefix)
  if ((opts.redis === undefined) === (opts.http === undefined)) {
    throw new InvalidOptionError('give the publisher one transport: redis or http')
  }
  if (app.hasDecorator('notify')) throw new InvalidOptionError('app.notify exists: register the edge or the publisher, not both')

  const transport: PublisherTransport = opts.redis !== undefined
    ? redisTransport({ redis: opts.redis, prefix, streams, timeout, readyTimeout, log: app.log, metrics: metricsOf(app) })
    : httpTransport(opts.http!, timeout)
  app.addHook('onClose', () => transport.close())
  app.addHook('onReady', () => transport.ready())
  const publish = publisherOf(streams, maxUsers, transport.deliver, offlineHook(opts.onOffline, app.log))
  // Presence lives in the edges' Redis under the edge's own store: ask an edge (GET /presence).
  const presence = async (): Promise<never> => { throw new PresenceDisabledError() }
  app.decorate('notify', { streams, publish, presence } as Notify)
}

export const notifyPublisher = fp(fastifyNotifyPublisher, { fastify: '5.x', name: 'notify-edge-publisher' })
export default notifyPublisher
