import Fastify, { type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import fastifyRedis from '@fastify/redis'
import { notifyBackend, notifyJwt, notifyPublisher } from '../../plugins/index.js'
import { orderRoutes } from '../orders.js'
import { STREAMS, mayJoinRoom } from '../streams.js'
import { promotionRoute } from '../promotion.js'

/** Where the order service answers the `room` channel's authorize for the edge. */
export const ROOM_HOOK = '/hooks/rooms'

export interface OrderServiceOptions {
  pageOrigin: string
  redisUrl: string
  jwksUrl: string
  topicPrefix: string
  orderStepMs: number
  logLevel: string
  /** Shared with the edge, which signs the RPC caller with it (SPEC section 13). */
  callerSecret: string
}

/**
 * The demo order service, split out: the same `orderRoutes` as the one-process example, with
 * `app.notify` from the publisher (straight onto the edges' Redis) instead of an edge. No sockets.
 */
export async function buildOrderService (opts: OrderServiceOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: opts.logLevel } })
  await app.register(cors, { origin: opts.pageOrigin })
  // Users' tokens (GET /orders) are the auth service's, verified against its key set.
  await app.register(notifyJwt, { jwksUrl: opts.jwksUrl, algorithm: 'RS256' })
  // The order book, in Redis so that every order-service instance answers GET /orders alike.
  await app.register(fastifyRedis, { url: opts.redisUrl })
  await app.register(notifyPublisher, { streams: STREAMS, redis: opts.redisUrl, topicPrefix: opts.topicPrefix })
  // RPCs the edge forwards (orders.place, orders.list) arrive with the caller signed: request.notifyPrincipal.
  await app.register(notifyBackend, { callerSecret: opts.callerSecret })
  await app.register(orderRoutes, { stepMs: opts.orderStepMs })
  // The edge asks here who may use a room (its `room` channel's authorize is this URL): the
  // same rule the one-process example runs in process.
  app.notifyBackend.authorizeHook(ROOM_HOOK, mayJoinRoom)
  await app.register(promotionRoute)
  app.get('/health', async () => ({ status: 'ok' }))
  return app
}
