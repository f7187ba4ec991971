import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'
import { Type } from 'typebox'
import { defineStreams, notifyEdge, notifyEdgeLoggerOptions, type NotifyEdgeRedisOptions } from '../plugins/index.js'
import type { AppConfig } from './config.js'
import { orderRoutes } from './orders.js'

// History lets a client that reconnects (or lands on another instance) resume with `since`;
// docs/history.md explains these sizes.
// The TypeBox schemas validate at run time and type `app.notify.publish` and the client.
export const STREAMS = defineStreams([
  { name: 'order', kind: 'private', schema: Type.Object({ orderId: Type.String(), status: Type.String() }), history: { size: 100, ttl: 3600 } },
  { name: 'reward', kind: 'private', history: { size: 100, ttl: 3600 } },
  { name: 'promotional', kind: 'public', history: { size: 100, ttl: 3600 } },
  { name: 'system', kind: 'public', history: { size: 1000, ttl: 3600 } }
])

/** The first of `candidates` (relative to this file) holding `file`: paths differ between the sources and dist/. */
function locate (file: string, candidates: string[]): string | undefined {
  return candidates
    .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
    .find((dir) => existsSync(join(dir, file)))
}

// The page sits beside this file in the sources and two levels up from the build output.
const PUBLIC_DIR = locate('index.html', ['./public/', '../../example-app/public/'])
// The SDK is served as ES modules from the build output, whether this file runs from the sources or dist/.
const CLIENT_DIR = locate('index.js', ['../dist/client/', '../client/'])

/** Redis as the environment names it: through Sentinel, a Cluster, a URL, or none. */
function redisOption (config: AppConfig): NotifyEdgeRedisOptions | undefined {
  if (config.redisSentinels !== undefined) return { sentinels: config.redisSentinels, name: config.redisSentinelName }
  return config.redisUrl
}

/**
 * The demo: auth service, order service and notification edge in one Fastify app. `logger` is
 * false or pino options; tickets and tokens are redacted from its lines either way.
 */
export async function buildApp (config: AppConfig, logger: false | Record<string, unknown> = { level: config.logLevel }): Promise<FastifyInstance> {
  const app = Fastify({ logger: logger === false ? false : { ...notifyEdgeLoggerOptions(), ...logger } })
  const redis = redisOption(config)

  await app.register(notifyEdge, {
    jwt: { secret: config.jwtSecret },
    streams: STREAMS,
    tickets: { ttl: config.ticketTtl },
    socketAuth: { allowedOrigins: config.allowedOrigins },
    publishApi: { apiKey: config.publishApiKey },
    // Set: Redis bus and tickets, so any number of instances share users and tickets.
    redis,
    metrics: {},
    // Users with no socket on the stream anywhere when it was published: a real service would
    // queue an e-mail or a push here (docs/presence.md).
    onOffline: (users, message) => {
      for (const user of users) app.log.info({ user, stream: message.stream }, `${user} is offline: would send an e-mail`)
    },
    // GET /asyncapi.json; docs/asyncapi.json is a copy (npm run docs:asyncapi).
    asyncapi: {
      info: { title: 'notify-edge example app', version: '1.0.0', description: 'Notifications of the demo order service: private order and reward streams, public promotional and system streams.' },
      servers: { local: { host: '127.0.0.1:3000', protocol: 'ws', description: 'npm start' } }
    }
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

  app.get('/health', async (_request, reply) => {
    const bus = app.notifyBus.health()
    if (redis === undefined) return { status: 'ok' }
    const state = { bus: bus.redis, tickets: app.redis.status }
    const healthy = bus.healthy && state.tickets === 'ready'
    return reply.code(healthy ? 200 : 503).send({ status: healthy ? 'ok' : 'degraded', redis: state })
  })

  if (PUBLIC_DIR !== undefined) await app.register(fastifyStatic, { root: PUBLIC_DIR })
  if (CLIENT_DIR !== undefined) {
    await app.register(fastifyStatic, { root: CLIENT_DIR, prefix: '/client/', decorateReply: false })
  } else {
    app.log.warn('dist/client is missing: run `npm run build` for the demo page to load the SDK')
  }
  return app
}
