// An edge with every keyed door (HTTP, gRPC, RabbitMQ, JetStream) as its own OS process, for
// test/exactly-once-crash.test.ts to SIGKILL; plain JavaScript on the build (dist/), so that a
// restart takes a second, not a TypeScript compile. CRASH_KEYS (comma-separated idempotency
// keys): the process kills itself the first time one of them has published, once the history
// script has run and before the answer is stored, the worst moment to die, with no hook in the edge.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { notifyEdge, RedisIdempotencyStore } from '../dist/plugins/index.js'
import { STREAMS } from '../dist/example-app/app.js'

const env = process.env
const prefix = env.TOPIC_PREFIX
const crashKeys = new Set((env.CRASH_KEYS ?? '').split(',').filter((key) => key !== ''))
const redis = new Redis(env.REDIS_URL)
const store = new RedisIdempotencyStore({ client: redis, keyPrefix: `${prefix}:idempotency:` })

// `complete` is the idempotency layer's next step once the publish resolved: dying here leaves the
// message published and only the pending marker in the idempotency store.
const dying = {
  claim: (key, token, pendingTtl) => store.claim(key, token, pendingTtl),
  release: (key, token) => store.release(key, token),
  extend: (key, token, pendingTtl) => store.extend(key, token, pendingTtl),
  async complete (key, result, ttl) {
    // Once per key across restarts (`<prefix>:crashed:<key>`): the retry the crash causes must get through.
    if (crashKeys.has(key) && await redis.set(`${prefix}:crashed:${key}`, '1', 'EX', 600, 'NX') === 'OK') process.kill(process.pid, 'SIGKILL')
    await store.complete(key, result, ttl)
  }
}

const app = Fastify({ logger: { level: 'info' } })
app.addHook('onClose', async () => { redis.disconnect() })
await app.register(notifyEdge, {
  jwt: { secret: env.JWT_SECRET },
  // The example's streams, all with history, and `ticker`, a public stream without.
  streams: [...STREAMS, { name: 'ticker', kind: 'public' }],
  redis: env.REDIS_URL,
  topicPrefix: prefix,
  publishApi: { apiKey: env.API_KEY },
  idempotency: { store: dying, pendingTtl: Number(env.PENDING_TTL ?? 10) },
  grpc: { apiKey: env.API_KEY, port: 0 },
  amqp: { url: env.AMQP_URL, exchange: env.AMQP_EXCHANGE, queue: env.AMQP_QUEUE, retryDelay: 100 },
  jetstream: { servers: env.NATS_URL, stream: env.NATS_STREAM, consumer: env.NATS_CONSUMER, subjectPrefix: env.NATS_PREFIX, retryDelay: 100 }
})
await app.listen({ port: 0, host: '127.0.0.1' })
