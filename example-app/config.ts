// The example app's settings, read from the environment (SPEC section 7).
import { DEV_API_KEY, DEV_JWT_SECRET, EnvReader, type HostPort } from '../bin/env.js'
import { MIN_KEY_LENGTH } from '../plugins/api-key.js'
import { MIN_SECRET_LENGTH } from '../plugins/jwt.js'

export type { HostPort } from '../bin/env.js'

export interface AppConfig {
  port: number
  host: string
  redisUrl: string | undefined
  /** Sentinels to ask for the master named `redisSentinelName` (SPEC section 10). */
  redisSentinels: HostPort[] | undefined
  redisSentinelName: string
  /** Seed nodes of a Redis Cluster (SPEC section 10). */
  redisCluster: HostPort[] | undefined
  jwtSecret: string
  publishApiKey: string
  ticketTtl: number
  allowedOrigins: string[] | undefined
  logLevel: string
  /** Pause between an order's status updates, in ms. */
  orderStepMs: number
  /** Set: consume the RabbitMQ ingress, and the order service publishes through it. */
  amqpUrl: string | undefined
  amqpExchange: string
  amqpQueue: string
  /** Set: serve the gRPC ingress on this port. */
  grpcPort: number | undefined
  /** Set: trace with OpenTelemetry, exporting spans over OTLP/HTTP there (docs/observability.md). */
  otlpEndpoint: string | undefined
}

/** Reads the config; `warnings` lists development defaults that stood in for missing secrets. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): { config: AppConfig, warnings: string[] } {
  const read = new EnvReader(env)
  const redis = read.redis()
  return {
    config: {
      port: read.integer('PORT', 3000, 0, 65535),
      host: read.get('HOST') ?? '127.0.0.1',
      redisUrl: redis.url,
      redisSentinels: redis.sentinels,
      redisSentinelName: redis.sentinelName,
      redisCluster: redis.cluster,
      jwtSecret: read.secret('JWT_SECRET', DEV_JWT_SECRET, MIN_SECRET_LENGTH),
      publishApiKey: read.secret('PUBLISH_API_KEY', DEV_API_KEY, MIN_KEY_LENGTH),
      ticketTtl: read.integer('TICKET_TTL', 30, 1, 3600),
      allowedOrigins: read.list('ALLOWED_ORIGINS'),
      logLevel: read.get('LOG_LEVEL') ?? 'info',
      orderStepMs: read.integer('ORDER_STEP_MS', 1000, 0, 60000),
      amqpUrl: read.get('AMQP_URL'),
      amqpExchange: read.get('AMQP_EXCHANGE') ?? 'notifications',
      amqpQueue: read.get('AMQP_QUEUE') ?? 'notify-edge',
      grpcPort: read.integer('GRPC_PORT', undefined, 0, 65535),
      otlpEndpoint: read.get('OTEL_EXPORTER_OTLP_ENDPOINT')
    },
    warnings: read.warnings
  }
}
