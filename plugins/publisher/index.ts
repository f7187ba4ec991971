import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { declareStreams, type StreamDefinition } from '../declarations.js'
import { BusUnavailableError, InvalidOptionError, PresenceUnavailableError } from '../errors.js'
import { offlineHook, presenceOf, publisherOf, type Deliver, type Notify, type OnOffline, type PresenceSource } from '../publishing.js'
import { metricsOf } from '../recorder.js'
import { topicPrefixOption } from '../topics.js'
import { positiveInteger } from '../util.js'
import { amqpTransport, type NotifyPublisherAmqpOptions } from './amqp-transport.js'
import { grpcTransport, type NotifyPublisherGrpcOptions } from './grpc-transport.js'
import { httpTransport, type NotifyPublisherHttpOptions } from './http-transport.js'
import { redisTransport, type NotifyPublisherRedisOptions } from './redis-transport.js'
import type { PublisherTransport } from './transport.js'
import { publisherControl } from './control.js'

export type { NotifyPublisherAmqpOptions } from './amqp-transport.js'
export type { NotifyPublisherGrpcOptions } from './grpc-transport.js'
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
   * URL, ioredis options, or `{ client }`. Give exactly one of `redis`, `http`, `grpc`, `amqp`.
   */
  redis?: NotifyPublisherRedisOptions
  /** Publish through an edge's `POST /notifications` (presence: its `GET /presence`). */
  http?: NotifyPublisherHttpOptions
  /** Publish through an edge's gRPC `Publish` (no presence: the proto has no call for it). */
  grpc?: NotifyPublisherGrpcOptions
  /**
   * Publish to the edges' RabbitMQ exchange, confirmed by the broker. Nothing answers back: the
   * result's `id`/`ids` are the AMQP `messageId`s, not message ids, with no `online`/`offline`,
   * and presence answers 501.
   */
  amqp?: NotifyPublisherAmqpOptions
  /** How long a publish (or a presence query) may take before it fails with 503, in ms. @default 1000 */
  timeout?: number
  /** How long start-up waits for Redis before leaving the declaration check to the first publish, in ms. @default 5000 */
  readyTimeout?: number
  /** As the edge's control `maxTokenLifetime`: how long a revocation by user is kept after its `before`, in ms. @default 86400000 */
  maxTokenLifetime?: number
  /** As the edge's `onOffline`: the users of a private publish with no subscribed connection anywhere. */
  onOffline?: OnOffline
}

const TRANSPORTS = ['redis', 'http', 'grpc', 'amqp'] as const

/**
 * Every error a publisher answers is one of the package's coded errors: what a transport's client
 * throws by itself (ioredis's "Stream isn't writeable…" while Redis is down, a socket error) means
 * the edges could not be reached, a 503.
 */
function coded<A extends unknown[], R> (call: (...args: A) => Promise<R>, Unavailable: new (why: string) => Error): (...args: A) => Promise<R> {
  return async (...args) => {
    try {
      return await call(...args)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw typeof code === 'string' && code.startsWith('FST_NOTIFY_') ? err : new Unavailable((err as Error).message)
    }
  }
}

function codedTransport (transport: PublisherTransport): { deliver: Deliver, presence: PresenceSource } {
  const source = transport.presence
  return {
    deliver: coded(transport.deliver, BusUnavailableError),
    presence: { users: coded(source.users.bind(source), PresenceUnavailableError), stream: coded(source.stream.bind(source), PresenceUnavailableError) }
  }
}

/**
 * `app.notify` without an edge in this process: the same `publish()` and `presence()`, checked
 * against the same declarations, sent to the edges over Redis, HTTP, gRPC or AMQP (SPEC section 11).
 */
async function fastifyNotifyPublisher (app: FastifyInstance, opts: NotifyPublisherOptions): Promise<void> {
  const prefix = topicPrefixOption(opts.topicPrefix)
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const timeout = positiveInteger('timeout', opts.timeout, 1000)
  const readyTimeout = positiveInteger('readyTimeout', opts.readyTimeout, 5000)
  const maxTokenLifetime = positiveInteger('maxTokenLifetime', opts.maxTokenLifetime, 86_400_000)
  const streams = declareStreams(opts.streams, prefix)
  const given = TRANSPORTS.filter((name) => opts[name] !== undefined)
  if (given.length !== 1) throw new InvalidOptionError(`give the publisher exactly one transport of ${TRANSPORTS.join(', ')}; got ${given.length}`)
  if (app.hasDecorator('notify')) throw new InvalidOptionError('app.notify exists: register the edge or the publisher, not both')
  const offline = offlineHook(opts.onOffline, app.log)

  let transport: PublisherTransport
  if (opts.redis !== undefined) {
    transport = redisTransport({ redis: opts.redis, prefix, streams, timeout, readyTimeout, log: app.log, metrics: metricsOf(app) })
  } else if (opts.http !== undefined) {
    transport = httpTransport(opts.http, timeout)
  } else if (opts.grpc !== undefined) {
    transport = await grpcTransport(opts.grpc, timeout)
  } else {
    transport = await amqpTransport(opts.amqp!, timeout, app.log)
  }
  app.addHook('onClose', () => transport.close())
  app.addHook('onReady', () => transport.ready())
  const { deliver, presence: source } = codedTransport(transport)
  const publish = publisherOf(streams, maxUsers, deliver, offline)
  const presence = presenceOf(streams, maxUsers, () => source)
  const control = publisherControl(transport.control, new Set(streams.keys()), maxTokenLifetime, app.log)
  app.decorate('notify', { streams, publish, presence, ...control } as Notify)
}

export const notifyPublisher = fp(fastifyNotifyPublisher, { fastify: '5.x', name: 'notify-edge-publisher' })
export default notifyPublisher
