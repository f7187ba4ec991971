import Fastify, { type FastifyInstance } from 'fastify'
import { notifyEdge, notifyEdgeLoggerOptions, type RpcMethod, type StreamDefinition } from '../plugins/index.js'
import type { EdgeConfig } from './config.js'

/**
 * The dedicated edge: tickets, `/ws` and `/public`, `POST /notifications`, `/metrics`, and
 * `GET /health` (alive, with Redis's state) and `GET /ready` (take traffic: Redis reachable; 503
 * while it is not, and while the edge drains).
 */
export async function buildEdge (
  config: EdgeConfig, streams: readonly StreamDefinition[], logger: false | Record<string, unknown> = { level: config.logLevel }, methods?: Record<string, RpcMethod>
): Promise<FastifyInstance> {
  const app = Fastify({ logger: logger === false ? false : { ...notifyEdgeLoggerOptions(), ...logger } })
  await app.register(notifyEdge, {
    jwt: config.jwt,
    streams,
    topicPrefix: config.topicPrefix,
    tickets: { ttl: config.ticketTtl },
    socketAuth: { allowedOrigins: config.allowedOrigins },
    publishApi: { apiKey: config.publishApiKey },
    redis: config.redis,
    bus: { redisEmitter: config.redisEmitter, flushInterval: config.busFlushInterval },
    metrics: {},
    // Refused at registration when shorter than 16 characters or equal to the publish key.
    admin: config.adminApiKey === undefined ? undefined : { apiKey: config.adminApiKey },
    limits: config.limits,
    // Methods and hooks served by backends (SPEC section 13): the caller travels signed with CALLER_SECRET.
    upstream: {
      methods,
      backend: config.callerSecret === undefined ? undefined : { callerSecret: config.callerSecret },
      // With Redis, a user's client publishes are limited across every instance of the edge.
      userPublishRate: config.redis === undefined ? undefined : { scope: 'fleet' }
    }
  })

  function redisState (): { healthy: boolean, redis?: Record<string, unknown> } {
    if (config.redis === undefined) return { healthy: true }
    const bus = app.notifyBus.health()
    const redis = { bus: bus.redis, tickets: app.redis.status }
    return { healthy: bus.healthy && redis.tickets === 'ready', redis }
  }
  app.get('/health', async (_request, reply) => {
    const { healthy, redis } = redisState()
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'degraded', redis })
  })
  // While the app closes Fastify answers 503 to every new request (return503OnClosing), this one included.
  app.get('/ready', async (_request, reply) => {
    // At its connection cap the instance is not ready: a load balancer sends new sockets elsewhere.
    const ready = redisState().healthy && app.notifyLimits.ready()
    return reply.code(ready ? 200 : 503).send({ ready })
  })
  return app
}
