// One of the split example's three processes (SPEC section 11), by its first argument: `auth`,
// `orders` or `edge`. `start.ts` runs all three; the settings are the environment's.
import { loadEdgeConfig } from '../../bin/config.js'
import { EnvReader } from '../../bin/env.js'
import { serve } from '../../bin/serve.js'
import { MIN_SECRET_LENGTH } from '../../plugins/jwt.js'
import { buildAuthService } from './auth.js'
import { buildDemoEdge } from './edge.js'
import { buildOrderService } from './orders.js'

const read = new EnvReader(process.env)
const host = read.get('HOST') ?? '127.0.0.1'
const ports = { edge: read.integer('PORT', 3000, 1, 65535), auth: read.integer('AUTH_PORT', 3001, 1, 65535), orders: read.integer('ORDERS_PORT', 3002, 1, 65535) }
const url = (port: number): string => `http://${host}:${port}`
const pageOrigin = url(ports.edge)
const jwksUrl = `${url(ports.auth)}/.well-known/jwks.json`
const redisUrl = read.get('REDIS_URL') ?? 'redis://127.0.0.1:6379'
const logLevel = read.get('LOG_LEVEL') ?? 'info'
const topicPrefix = read.get('TOPIC_PREFIX') ?? 'notify'
// The edge signs RPC callers with it and the order service verifies them (SPEC section 13).
const callerSecret = read.secret('CALLER_SECRET', 'notify-edge-demo-caller-secret-do-not-use-in-production', MIN_SECRET_LENGTH)

const role = process.argv[2]
if (role === 'auth') {
  await serve(await buildAuthService({ pageOrigin, logLevel }), { port: ports.auth, host })
} else if (role === 'orders') {
  const orderStepMs = read.integer('ORDER_STEP_MS', 1000, 0, 60000)
  await serve(await buildOrderService({ pageOrigin, redisUrl, jwksUrl, topicPrefix, orderStepMs, logLevel, callerSecret }), { port: ports.orders, host })
} else if (role === 'edge') {
  const { config, warnings } = await loadEdgeConfig({ ...process.env, REDIS_URL: redisUrl, JWKS_URL: jwksUrl, JWT_ALGORITHM: 'RS256', ALLOWED_ORIGINS: pageOrigin, CALLER_SECRET: callerSecret })
  const app = await buildDemoEdge(config, { auth: url(ports.auth), orders: url(ports.orders) })
  for (const warning of warnings) app.log.warn(warning)
  await serve(app, { port: ports.edge, host })
} else {
  process.stderr.write('usage: server.js auth|orders|edge\n')
  process.exit(1)
}
