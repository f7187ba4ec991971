import Fastify, { type FastifyInstance } from 'fastify'
import { notifyEdge, notifyEdgeLoggerOptions } from '../plugins/index.js'
import { redisOption } from '../bin/env.js'
import type { AppConfig } from './config.js'
import { loginRoute } from './login.js'
import { orderRoutes } from './orders.js'
import { pageRoutes } from './page.js'
import { promotionRoute } from './promotion.js'
import { STREAMS } from './streams.js'

export { STREAMS } from './streams.js'

/**
 * The demo: auth service, order service and notification edge in one Fastify app. `logger` is
 * false or pino options; tickets and tokens are redacted from its lines either way.
 */
export async function buildApp (config: AppConfig, logger: false | Record<string, unknown> = { level: config.logLevel }): Promise<FastifyInstance> {
  const app = Fastify({ logger: logger === false ? false : { ...notifyEdgeLoggerOptions(), ...logger } })
  const redis = redisOption({ url: config.redisUrl, sentinels: config.redisSentinels, sentinelName: config.redisSentinelName, cluster: config.redisCluster })

  await app.register(notifyEdge, {
    jwt: { secret: config.jwtSecret },
    streams: STREAMS,
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
      for (const user of users) app.log.info({ user, stream: message.stream }, `${user} is offline: would send an e-mail`)
    },
    // Set: producers may publish through RabbitMQ (SPEC section 9), as the order service below does.
    amqp: config.amqpUrl === undefined ? undefined : { url: config.amqpUrl, exchange: config.amqpExchange, queue: config.amqpQueue },
    grpc: config.grpcPort === undefined ? undefined : { apiKey: config.publishApiKey, port: config.grpcPort, host: config.host },
    // GET /asyncapi.json; docs/asyncapi.json is a copy (npm run docs:asyncapi).
    asyncapi: {
      info: { title: 'notify-edge example app', version: '1.0.0', description: 'Notifications of the demo order service: private order and reward streams, public promotional and system streams.' },
      servers: { local: { host: '127.0.0.1:3000', protocol: 'ws', description: 'npm start' } }
    }
  })

  await app.register(loginRoute)

  await app.register(orderRoutes, { stepMs: config.orderStepMs, amqp: config.amqpUrl !== undefined })

  await app.register(promotionRoute)

  // 503 only when this instance cannot serve (Redis away); a broker outage is every instance's,
  // and sockets and HTTP still work, so it shows as degraded with 200.
  app.get('/health', async (_request, reply) => {
    const bus = app.notifyBus.health()
    const amqp = config.amqpUrl === undefined ? undefined : app.notifyAmqp.health()
    const state = redis === undefined ? undefined : { bus: bus.redis, tickets: app.redis.status }
    const serving = state === undefined || (bus.healthy && state.tickets === 'ready')
    const ok = serving && (amqp === undefined || amqp.state === 'consuming')
    return reply.code(serving ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', redis: state, amqp })
  })

  await pageRoutes(app)
  return app
}
