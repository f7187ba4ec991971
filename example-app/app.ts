import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'
import { notifyEdge, notifyEdgeLoggerOptions, type StreamDefinition } from '../plugins/index.js'
import type { AppConfig } from './config.js'
import { orderRoutes } from './orders.js'

export const STREAMS: StreamDefinition[] = [
  { name: 'order', kind: 'private', schema: { type: 'object', required: ['orderId', 'status'] } },
  { name: 'reward', kind: 'private' },
  { name: 'promotional', kind: 'public' },
  { name: 'system', kind: 'public' }
]

// The page sits beside this file in the sources and two levels up from the build output.
const PUBLIC_DIR = ['./public/', '../../example-app/public/']
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((dir) => existsSync(dir))

/**
 * The demo: auth service, order service and notification edge in one Fastify app. `logger` is
 * false or pino options; tickets and tokens are redacted from its lines either way.
 */
export async function buildApp (config: AppConfig, logger: false | Record<string, unknown> = { level: config.logLevel }): Promise<FastifyInstance> {
  const app = Fastify({ logger: logger === false ? false : { ...notifyEdgeLoggerOptions(), ...logger } })

  await app.register(notifyEdge, {
    jwt: { secret: config.jwtSecret },
    streams: STREAMS,
    tickets: { ttl: config.ticketTtl },
    socketAuth: { allowedOrigins: config.allowedOrigins },
    publishApi: { apiKey: config.publishApiKey },
    metrics: {}
  })

  app.post('/auth/login', {
    schema: {
      body: {
        type: 'object',
        required: ['user'],
        additionalProperties: false,
        properties: {
          user: { type: 'string', minLength: 1, maxLength: 256 },
          ttl: { type: 'integer', minimum: 1, maximum: 86400, default: 3600 }
        }
      }
    }
  }, async (request) => {
    const { user, ttl } = request.body as { user: string, ttl: number }
    return { token: app.jwt.sign({ sub: user }, { expiresIn: ttl }) }
  })

  await app.register(orderRoutes, { stepMs: config.orderStepMs })

  // The page holds no API key; this lets it show a public stream at work.
  let promotions = 0
  app.post('/demo/promotion', async (_request, reply) =>
    reply.code(202).send(await app.notify.publish({ stream: 'promotional', data: { text: `Promotion #${++promotions}: 10% off today` } })))

  app.get('/health', async () => ({ status: 'ok' }))

  if (PUBLIC_DIR !== undefined) await app.register(fastifyStatic, { root: PUBLIC_DIR })
  return app
}
