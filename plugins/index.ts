// Ships in index.d.ts so that @fastify/jwt's `app.jwt` and `request.user` types reach the app.
/// <reference types="@fastify/jwt" preserve="true" />
import fp from 'fastify-plugin'
import fastifyRedis, { type FastifyRedisPluginOptions } from '@fastify/redis'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { notifyJwt, type NotifyJwtOptions } from './jwt.js'
import { notifyBus, type NotifyBusOptions } from './bus/index.js'
import { notifyHistory, RedisHistoryStore, type NotifyHistoryOptions, type RedisHistoryClient } from './history/index.js'
import { notify, type NotifyOptions } from './notify.js'
import { notifyPresence, presenceKeyPrefix, RedisPresenceStore, type NotifyPresenceOptions, type RedisPresenceStoreOptions } from './presence/index.js'
import { notifyTickets, RedisTicketStore, type NotifyTicketsOptions, type RedisTicketClient } from './tickets/index.js'
import { notifySocketAuth, type NotifySocketAuthOptions } from './socket-auth.js'
import { notifyStreams, type NotifyStreamsOptions } from './streams/index.js'
import { notifySse, type NotifySseOptions } from './streams/sse.js'
import { notifyPublishApi, type NotifyPublishApiOptions } from './publish-api.js'
import { notifyIdempotency, RedisIdempotencyStore, type NotifyIdempotencyOptions, type RedisIdempotencyClient } from './idempotency/index.js'
import { notifyMetrics, type NotifyMetricsOptions } from './metrics.js'
import { notifyAsyncApi, type NotifyAsyncApiOptions } from './asyncapi.js'
import { notifyAmqp, type NotifyAmqpOptions } from './amqp/index.js'
import { notifyGrpc, type NotifyGrpcOptions } from './grpc/index.js'
import { notifyOffline, RedisDeliveryClaims, RedisPushSubscriptionStore, type NotifyOfflineOptions } from './offline/index.js'
import { notifyOutbox, type NotifyOutboxOptions } from './outbox/index.js'
import { notifyJetStream, type NotifyJetStreamOptions } from './jetstream/index.js'
import { endConnection, redisConnection, watchOutages, type RedisClientLike, type RedisConnectionOptions } from './redis.js'
import { streamManifest, writeManifest, type ManifestClient, type StreamManifest } from './stream-manifest.js'
import { isClusterOptions } from './bus/redis-emitter.js'
import { notifyControl, RedisRevocationStore, type NotifyControlOptions } from './control/index.js'
import { revokedKey } from './control/redis-store.js'
import { notifyAdminApi, type NotifyAdminApiOptions } from './admin-api.js'
import { notifyLimits, RedisUserCounter, type NotifyConnectionLimitsOptions } from './limits/index.js'
import { notifyUpstream, type NotifyUpstreamOptions } from './upstream/index.js'
import { FAIL_FAST, redisCluster, type RedisClusterOptions } from './bus/cluster-emitter.js'

export * from './errors.js'
export * from './bus/index.js'
export * from './history/index.js'
export * from './declarations.js'
export type * from './typed.js'
export { JwksKeySet, type JwksAlgorithm, type JwksOptions } from './jwks.js'
export * from './jwt.js'
export * from './notify.js'
export * from './publisher/index.js'
export * from './presence/index.js'
export { compareMessageIds, EMPTY_POSITION, isMessageId } from './message-id.js'
export * from './tickets/index.js'
export * from './socket-auth.js'
export * from './streams/index.js'
export { notifySse, type NotifySseOptions } from './streams/sse.js'
export * from './publish-api.js'
export * from './idempotency/index.js'
export * from './metrics.js'
export * from './asyncapi.js'
export { publishBodySchema, publishResultSchema } from './schemas.js'
export * from './amqp/index.js'
export * from './grpc/index.js'
export * from './offline/index.js'
export * from './control/index.js'
export * from './admin-api.js'
export * from './limits/index.js'
export type * from './control-commands.js'
export type { ControlledConnection, NotifyControlHooks, ServerFrame } from './control-hooks.js'
export { refuseRevoked } from './control-hooks.js'

export * from './outbox/index.js'
export * from './jetstream/index.js'
export { notifyEdgeLoggerOptions, redactSecrets, redactedReqSerializer } from './logging.js'
export * from './upstream/index.js'
export { TRACER_NAME, contextFrom, continueTrace, traceLogFields, traceparentOf } from './tracing.js'

/** Redis for the whole edge: connection options, or an existing ioredis client to reuse. */
export type NotifyEdgeRedisOptions = RedisConnectionOptions | RedisClusterOptions | { client: RedisClientLike & RedisTicketClient & RedisHistoryClient & ManifestClient & RedisIdempotencyClient }

export interface NotifyEdgeOptions extends NotifyOptions {
  /**
   * Runs the edge on Redis, so that it spans many instances: the bus becomes mqemitter-redis on
   * two connections of its own (one SUBSCRIBE per topic this instance's sockets want), tickets
   * move to a `RedisTicketStore` (`SET … EX ttl NX`, `GETDEL`: redeemable once on any instance)
   * under `<topicPrefix>:ticket:`, and history to a `RedisHistoryStore` (Redis Streams under
   * `<topicPrefix>:history:`, appended and published by one script when the bus is built here).
   *
   * A URL (`rediss://` for TLS) or ioredis options with an optional `url` (with `sentinels` and
   * `name`: the master Sentinel names, followed across failovers): the edge also registers
   * `@fastify/redis` (`app.redis`, an ioredis 5 client without offline queue, so calls fail fast
   * while Redis is away) and closes it on app close, within `bus.closeTimeout` even when Redis is
   * down. Or `{ client }`, e.g. the `app.redis` of your own @fastify/redis: the bus duplicates it,
   * tickets use it, and the edge never closes it.
   *
   * A `bus.emitter`, `bus.redis`, `tickets.store` or `history.store` given explicitly wins.
   * @default unset: in-process bus and memory tickets (one instance)
   */
  redis?: NotifyEdgeRedisOptions
  /** Registers `@fastify/jwt` with pinned algorithms; leave out when the app registered it already. */
  jwt?: NotifyJwtOptions
  bus?: NotifyBusOptions
  /** History for streams that declare `history`, and the replay cap. @default {} (memory, or Redis with `redis`) */
  history?: NotifyHistoryOptions
  /**
   * Who is connected (`app.notify.presence()`, `GET /presence`, the publish outcome's hook):
   * in memory, or with `redis` each instance's share in Redis under `{<topicPrefix>:presence}:`,
   * expiring `ttl` ms after its last heartbeat. `false` leaves presence out (the publish outcome
   * still works: it comes from the bus). @default {}
   */
  presence?: NotifyEdgePresenceOptions | false
  /** Ticket issuance; false to leave it out. @default {} */
  tickets?: NotifyTicketsOptions | false
  socketAuth?: NotifySocketAuthOptions
  /** WebSocket routes. @default [{ path: '/ws' }, { path: '/public', anonymous: true }] */
  routes?: NotifyStreamsOptions[]
  /**
   * Idempotency keys of every ingress (`Idempotency-Key`, AMQP `messageId`, gRPC
   * `idempotency_key`): memory, or a `RedisIdempotencyStore` under `<topicPrefix>:idempotency:`
   * with `redis`. @default {}
   */
  idempotency?: NotifyIdempotencyOptions
  /**
   * Server-Sent Events (SPEC section 14, docs/sse.md): `routes` default to `/sse` (authenticated,
   * with `POST /sse/access`) and `/public/sse` (anonymous), each given `secret`; left out when not given.
   */
  sse?: NotifyEdgeSseOptions
  /** `POST /notifications`; left out when not given. */
  publishApi?: NotifyPublishApiOptions
  /** The RabbitMQ ingress (SPEC section 9): consume the exchange's messages into `app.notify.publish`; left out when not given. */
  amqp?: NotifyAmqpOptions
  /** The gRPC ingress (SPEC section 9, `proto/notify/v1/notify.proto`); left out when not given. */
  grpc?: NotifyGrpcOptions
  /** The PostgreSQL outbox relay (SPEC section 16, docs/outbox-jetstream.md); left out when not given. */
  outbox?: NotifyOutboxOptions
  /** The NATS JetStream ingress (SPEC section 16, docs/outbox-jetstream.md); left out when not given. */
  jetstream?: NotifyJetStreamOptions
  /** Prometheus metrics and `GET /metrics`; left out when not given. */
  metrics?: NotifyMetricsOptions
  /** `GET /asyncapi.json`: the AsyncAPI 3 document of the WebSocket routes and declared streams; left out when not given. */
  asyncapi?: NotifyAsyncApiOptions
  /**
   * Offline delivery (SPEC section 18): Web Push and e-mail for the users of a private publish
   * with no subscribed connection anywhere. With `redis`, subscriptions live under
   * `<topicPrefix>:push:` and delivery claims under `<topicPrefix>:offline:`. Left out when not given.
   */
  offline?: NotifyOfflineOptions
  /**
   * Acting on users across instances (SPEC section 15): `app.notify.disconnect()`, `revoke()`,
   * `subscribe()`, `unsubscribe()`, the revocation list (a `RedisRevocationStore` under
   * `<topicPrefix>:revoked` with `redis`) checked at every credential; `false` leaves it out.
   * @default {}
   */
  control?: NotifyControlOptions | false
  /** `POST /admin/…` with its own key (never the publish key); left out when not given. */
  admin?: NotifyAdminApiOptions
  /**
   * Connections per instance, handshakes per second, connections per user across instances (a
   * `RedisUserCounter` under `<topicPrefix>:conns:` with `redis`); left out when not given.
   */
  limits?: NotifyConnectionLimitsOptions
  /**
   * Client publish and RPC over the sockets (SPEC section 13, docs/upstream.md): limits, methods,
   * backends. `false` leaves it out (clients then only listen). @default {}
   */
  upstream?: NotifyUpstreamOptions | false
}

/** The edge's SSE routes, sharing one secret (see `NotifySseOptions.secret`). */
export interface NotifyEdgeSseOptions {
  secret?: string
  /** @default [{ path: '/sse' }, { path: '/public/sse', anonymous: true }] */
  routes?: NotifySseOptions[]
}

type EdgeRedisClient = RedisTicketClient & RedisHistoryClient & ManifestClient & RedisIdempotencyClient

/** Presence options, with the timings of the Redis store the edge builds. */
export type NotifyEdgePresenceOptions = NotifyPresenceOptions & Pick<RedisPresenceStoreOptions, 'heartbeatInterval' | 'ttl'>

/**
 * The given client, or a new one registered as `app.redis` and closed on app close; `onReady`
 * runs whenever a client built here (re)connects.
 */
async function redisClient (app: FastifyInstance, redis: NotifyEdgeRedisOptions, closeTimeout: number, onReady: () => void): Promise<EdgeRedisClient> {
  if (typeof redis === 'object' && redis !== null && 'client' in redis) return redis.client
  if (app.hasDecorator('redis')) {
    throw new InvalidOptionError('app.redis is registered already: pass redis: { client: app.redis }')
  }
  const client = isClusterOptions(redis)
    ? redisCluster(redis, FAIL_FAST)
    // As the bus: no offline queue (503 at once while Redis is away), and a command in flight when
    // the connection drops is not resent after the reconnect, when its caller has had its 503.
    : redisConnection({ enableOfflineQueue: false, autoResendUnfulfilledCommands: false, ...(typeof redis === 'string' ? { url: redis } : redis) }, {})
  watchOutages(client, app.log, 'notify edge (tickets and history answer 503 until it is back)', onReady)
  app.addHook('onClose', () => endConnection(client, closeTimeout))
  // @fastify/redis types its client as ioredis 6; ours is ioredis 5 with the same API.
  await app.register(fastifyRedis, { client, closeClient: false } as unknown as FastifyRedisPluginOptions)
  return client
}

/** Registers the whole edge from one options object; each plugin stays usable alone. */
async function fastifyNotifyEdge (app: FastifyInstance, opts: NotifyEdgeOptions): Promise<void> {
  const { jwt: jwtOptions, bus = {}, history, tickets, presence = {}, socketAuth, routes, sse, publishApi, redis, metrics, idempotency, amqp, grpc, outbox, jetstream, asyncapi, upstream = {}, offline, control = {}, admin, limits, ...core } = opts
  // First, so that every plugin after it finds the recorder.
  if (metrics !== undefined) await app.register(notifyMetrics, metrics)
  if (jwtOptions !== undefined) await app.register(notifyJwt, jwtOptions)
  const busOnRedis = redis !== undefined && bus.emitter === undefined && bus.redis === undefined
  await app.register(notifyBus, busOnRedis ? { ...bus, redis } : bus)
  const prefix = core.topicPrefix ?? 'notify'
  // Publishers on the same Redis check their declarations against this (SPEC section 11); it is
  // written when the edge is ready and again after every reconnect (Redis may have lost it).
  let manifest: StreamManifest | null = null
  let announced: Promise<void> = Promise.resolve()
  const announce = (): void => {
    if (manifest === null || client === null) return
    announced = writeManifest(client, prefix, manifest, bus.publishTimeout ?? 1000)
      .catch((err: unknown) => app.log.warn({ err }, 'notify edge: stream manifest not written; publishers cannot check their declarations'))
  }
  const client = redis === undefined ? null : await redisClient(app, redis, bus.closeTimeout ?? 2000, announce)
  const historyStore = history?.store ?? (client === null
    ? undefined
    // Append and PUBLISH in one script only onto the mqemitter-redis bus built here, whose channels are the topics.
    : new RedisHistoryStore({ client, keyPrefix: `${prefix}:history:`, publish: busOnRedis && (isClusterOptions(redis) ? 'sharded' : true), timeout: bus.publishTimeout }))
  await app.register(notifyHistory, { ...history, store: historyStore })
  if (presence !== false) {
    const { heartbeatInterval, ttl, ...rest } = presence
    const store = presence.store ?? (client === null
      ? undefined
      : new RedisPresenceStore({
        client,
        keyPrefix: presenceKeyPrefix(prefix),
        heartbeatInterval,
        ttl,
        timeout: bus.publishTimeout,
        onError: (err) => app.log.warn({ err }, 'notify presence: write failed; rewriting this instance\'s share at the next heartbeat')
      }))
    await app.register(notifyPresence, { ...rest, store, closeStore: presence.store === undefined || presence.closeStore === true })
  }
  await app.register(notify, core)
  const idempotencyStore = idempotency?.store ?? (client === null
    ? undefined
    : new RedisIdempotencyStore({ client, keyPrefix: `${prefix}:idempotency:` }))
  await app.register(notifyIdempotency, { ...idempotency, store: idempotencyStore })
  if (client !== null) {
    manifest = streamManifest(app.notify.streams)
    app.addHook('onReady', async () => {
      announce()
      await announced
    })
  }
  if (control !== false) {
    const store = control.store ?? (client === null ? undefined : new RedisRevocationStore({ client, key: revokedKey(prefix), timeout: bus.publishTimeout }))
    await app.register(notifyControl, { topicPrefix: prefix, ...control, store })
  }
  if (tickets !== false) {
    const store = tickets?.store ?? (client === null
      ? undefined
      : new RedisTicketStore({ client, keyPrefix: `${prefix}:ticket:` }))
    // A ticket's connection keeps what revocation and the streams claim read.
    const keepClaims = control === false ? undefined : ['jti', 'iat', ...(control.streamsClaim === undefined ? [] : [control.streamsClaim])]
    await app.register(notifyTickets, { keepClaims, ...tickets, store })
  }
  await app.register(notifySocketAuth, socketAuth ?? {})
  if (limits !== undefined) {
    const counter = limits.counter ?? (client === null
      ? undefined
      : new RedisUserCounter({ client: client as unknown as ConstructorParameters<typeof RedisUserCounter>[0]['client'], prefix, timeout: bus.publishTimeout, onError: (err) => app.log.warn({ err }, 'notify limits: liveness not written') }))
    await app.register(notifyLimits, { ...limits, counter })
  }
  if (upstream !== false) {
    // A fleet-wide per-user publish limit lives on the edge's Redis, unless a store was given.
    const rateStore = upstream.rateStore ?? (client === null ? undefined : { client, keyPrefix: `${prefix}:rate:publish:`, timeout: bus.publishTimeout })
    await app.register(notifyUpstream, { ...upstream, rateStore })
  }
  const streamRoutes = routes ?? [{ path: '/ws' }, { path: '/public', anonymous: true }]
  for (const route of streamRoutes) {
    await app.register(notifyStreams, route)
  }
  if (sse !== undefined) {
    for (const route of sse.routes ?? [{ path: '/sse' }, { path: '/public/sse', anonymous: true }]) {
      await app.register(notifySse, { secret: sse.secret, ...route })
    }
  }
  if (publishApi !== undefined) await app.register(notifyPublishApi, publishApi)
  if (admin !== undefined) await app.register(notifyAdminApi, { publishApiKey: publishApi?.apiKey, ...admin })
  if (asyncapi !== undefined) {
    const described = streamRoutes.map((route) => ({ path: route.path ?? '/ws', anonymous: route.anonymous === true }))
    await app.register(notifyAsyncApi, { routes: described, ...asyncapi })
  }
  if (amqp !== undefined) await app.register(notifyAmqp, amqp)
  if (grpc !== undefined) await app.register(notifyGrpc, grpc)
  if (offline !== undefined) {
    const push = offline.push === undefined || offline.push.store !== undefined || client === null
      ? offline.push
      : { ...offline.push, store: new RedisPushSubscriptionStore({ client, keyPrefix: `${prefix}:push:` }) }
    const claims = offline.claims ?? (client === null ? undefined : new RedisDeliveryClaims({ client, keyPrefix: `${prefix}:offline:` }))
    await app.register(notifyOffline, { ...offline, push, claims })
  }

  if (outbox !== undefined) await app.register(notifyOutbox, outbox)
  if (jetstream !== undefined) await app.register(notifyJetStream, jetstream)
}

export const notifyEdge = fp(fastifyNotifyEdge, { fastify: '5.x', name: 'notify-edge' })
export default notifyEdge
