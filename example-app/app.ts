import { createHmac } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import { notifyEdge, notifyEdgeLoggerOptions } from '../plugins/index.js'
import { redisOption } from '../bin/env.js'
import type { AppConfig } from './config.js'
import { loginRoute } from './login.js'
import { OrderOwners, orderRoutes } from './orders.js'
import { roomRoutes } from './rooms.js'
import { pageRoutes } from './page.js'
import { promotionRoute } from './promotion.js'
import { offlineOptions, pushKeyRoute } from './offline.js'
import { METHODS } from './methods.js'
import { exampleStreams } from './streams.js'

export { STREAMS } from './streams.js'

/**
 * The demo: auth service, order service and notification edge in one Fastify app. `logger` is
 * false or pino options; tickets and tokens are redacted from its lines either way.
 */
export async function buildApp (config: AppConfig, logger: false | Record<string, unknown> = { level: config.logLevel }): Promise<FastifyInstance> {
  const app = Fastify({ logger: logger === false ? false : { ...notifyEdgeLoggerOptions(), ...logger } })
  const redis = redisOption({ url: config.redisUrl, sentinels: config.redisSentinels, sentinelName: config.redisSentinelName, cluster: config.redisCluster })
  // The order-status channel asks the order service who placed an order; its book comes later.
  const owners = new OrderOwners()

  await app.register(notifyEdge, {
    jwt: { secret: config.jwtSecret },
    streams: exampleStreams(owners.lookup),
    topicPrefix: config.topicPrefix,
    tickets: { ttl: config.ticketTtl },
    socketAuth: { allowedOrigins: config.allowedOrigins },
    publishApi: { apiKey: config.publishApiKey },
    // Set: Redis bus and tickets, so any number of instances share users and tickets.
    redis,
    metrics: {},
    // Set: spans for publishes and deliveries; example-app/tracing.ts registered the SDK.
    tracing: config.otlpEndpoint !== undefined,
    // Users with no socket on the stream anywhere when it was published: a real service would
    // queue an e-mail or a push here (docs/presence.md).
    onOffline: (users, message) => {
      for (const user of users) {
        const fallback = message.fallback?.[user]
        if (fallback === undefined) app.log.info({ user, stream: message.stream }, `${user} is offline: would send an e-mail`)
        else app.log.info({ user, stream: message.stream, fallback }, `${user} is offline: fallback ${fallback}`)
      }
    },
    // VAPID_* and SMTP_URL: Web Push and e-mail for offline users of the order stream (SPEC section 18).
    offline: offlineOptions(config),

    // GET /sse and /public/sse (docs/sse.md); the secret must be the same on every instance.
    sse: { secret: config.sseSecret ?? createHmac('sha256', config.jwtSecret).update('notify-edge sse secret').digest('base64url') },
    // Set: producers may publish through RabbitMQ (SPEC section 9), as the order service below does.
    amqp: config.amqpUrl === undefined ? undefined : { url: config.amqpUrl, exchange: config.amqpExchange, queue: config.amqpQueue },
    grpc: config.grpcPort === undefined ? undefined : { apiKey: config.publishApiKey, port: config.grpcPort, host: config.host },
    // Set: the order service's outbox (below), relayed by one instance at a time (SPEC section 16).
    outbox: config.databaseUrl === undefined ? undefined : { database: config.databaseUrl, table: config.outboxTable },
    // Set: producers may publish through NATS JetStream (SPEC section 16).
    jetstream: config.natsUrl === undefined ? undefined : { servers: config.natsUrl, stream: config.natsStream, consumer: config.natsConsumer, subjectPrefix: config.natsSubjectPrefix },
    // The page places and lists orders over its socket: served by the routes below, in process.
    // With Redis, a user's chat publishes are limited across every instance, not per instance.
    upstream: { methods: METHODS, userPublishRate: redis === undefined ? undefined : { scope: 'fleet' } },
    // GET /asyncapi.json; docs/asyncapi.json is a copy (npm run docs:asyncapi).
    asyncapi: {
      info: { title: 'notify-edge example app', version: '1.0.0', description: 'Notifications of the demo order service: private order and reward streams, public promotional and system streams, chat rooms (room:<name>) and one channel per order (order-status:<orderId>).' },
      servers: { local: { host: '127.0.0.1:3000', protocol: 'ws', description: 'npm start' } }
    }
  })

  await app.register(loginRoute)

  await app.register(orderRoutes, {
    stepMs: config.orderStepMs,
    amqp: config.amqpUrl !== undefined,
    outbox: config.databaseUrl === undefined ? undefined : { databaseUrl: config.databaseUrl, table: config.outboxTable },
    jetstream: config.natsUrl !== undefined,
    owners
  })

  await app.register(roomRoutes)

  await app.register(promotionRoute)

  await pushKeyRoute(app, config)

  // 503 only when this instance cannot serve (Redis away); a broker outage is every instance's,
  // and sockets and HTTP still work, so it shows as degraded with 200.
  app.get('/health', async (_request, reply) => {
    const bus = app.notifyBus.health()
    const amqp = config.amqpUrl === undefined ? undefined : app.notifyAmqp.health()
    const jetstream = config.natsUrl === undefined ? undefined : app.notifyJetStream.health()
    const outbox = config.databaseUrl === undefined ? undefined : app.notifyOutbox.health()
    const state = redis === undefined ? undefined : { bus: bus.redis, tickets: app.redis.status }
    const serving = state === undefined || (bus.healthy && state.tickets === 'ready')
    const ok = serving && (amqp === undefined || amqp.state === 'consuming') && (jetstream === undefined || jetstream.state === 'consuming')
    return reply.code(serving ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', redis: state, amqp, jetstream, outbox })
  })

  await pageRoutes(app)
  return app
}
