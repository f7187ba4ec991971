// The example app's settings, read from the environment (SPEC section 7).
import { DEV_API_KEY, DEV_JWT_SECRET, EnvReader, SettingError, type HostPort } from '../bin/env.js'
import { MIN_KEY_LENGTH } from '../plugins/api-key.js'
import { MIN_SECRET_LENGTH } from '../plugins/jwt.js'
import { TOPIC_PREFIX } from '../plugins/topics.js'

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
  /** Prefix of topics and Redis keys, so that deployments (and tests) can share one Redis. */
  topicPrefix: string
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
  /** Set (all three of VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY, VAPID_SUBJECT): Web Push for offline users of `order`. */
  vapid: { publicKey: string, privateKey: string, subject: string } | undefined
  /** Push endpoint hosts accepted (PUSH_ENDPOINT_HOSTS); unset: the browsers' push services. */
  pushEndpointHosts: string[] | undefined
  /** Set: e-mail for offline users of `order`, from SMTP_FROM. */
  smtpUrl: string | undefined
  smtpFrom: string
  /** Set: the order service stores orders in PostgreSQL and notifies through the outbox, which the edge relays. */
  databaseUrl: string | undefined
  outboxTable: string
  /** Set: consume the JetStream ingress, and the order service publishes through it (unless `databaseUrl`). */
  natsUrl: string | undefined
  natsStream: string
  natsConsumer: string
  natsSubjectPrefix: string
  /** Signs SSE event ids and access tokens (SPEC section 14); unset: derived from `jwtSecret`, shared by every instance as it is. */
  sseSecret: string | undefined
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
      topicPrefix: read.matching('TOPIC_PREFIX', 'notify', TOPIC_PREFIX, '1 to 64 letters, digits, _ or -'),
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
      vapid: vapidKeys(read),
      pushEndpointHosts: read.list('PUSH_ENDPOINT_HOSTS'),
      smtpUrl: read.get('SMTP_URL'),
      smtpFrom: read.get('SMTP_FROM') ?? 'notify-edge demo <notify@example.com>',
      databaseUrl: read.get('DATABASE_URL'),
      outboxTable: read.get('OUTBOX_TABLE') ?? 'notify_outbox',
      natsUrl: read.get('NATS_URL'),
      natsStream: read.get('NATS_STREAM') ?? 'notify',
      natsConsumer: read.get('NATS_CONSUMER') ?? 'notify-edge',
      natsSubjectPrefix: read.get('NATS_SUBJECT_PREFIX') ?? 'notify',
      sseSecret: read.get('SSE_SECRET'),
      otlpEndpoint: read.get('OTEL_EXPORTER_OTLP_ENDPOINT')
    },
    warnings: read.warnings
  }
}

function vapidKeys (read: EnvReader): AppConfig['vapid'] {
  const [publicKey, privateKey, subject] = ['VAPID_PUBLIC_KEY', 'VAPID_PRIVATE_KEY', 'VAPID_SUBJECT'].map((name) => read.get(name))
  if (publicKey === undefined && privateKey === undefined && subject === undefined) return undefined
  if (publicKey === undefined || privateKey === undefined || subject === undefined) {
    throw new SettingError('set all of VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY and VAPID_SUBJECT, or none (`npx web-push generate-vapid-keys` makes a pair)')
  }
  return { publicKey, privateKey, subject }
}
