// An edge whose only work is relaying the outbox, run as its own OS process so that a test can
// SIGKILL it at a chosen point (test/outbox-crash.test.ts).
import Fastify from 'fastify'
import { notifyEdge } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { SECRET } from './helpers.js'

const env = process.env
const app = Fastify({ logger: { level: 'info' } })
await app.register(notifyEdge, {
  jwt: { secret: SECRET },
  streams: STREAMS,
  redis: env.REDIS_URL!,
  topicPrefix: env.TOPIC_PREFIX!,
  idempotency: { pendingTtl: Number(env.PENDING_TTL ?? 10) },
  outbox: { database: { connectionString: env.DATABASE_URL!, application_name: 'crash-relay' }, table: env.OUTBOX_TABLE!, lockInterval: 100 }
})
await app.listen({ port: 0, host: '127.0.0.1' })
