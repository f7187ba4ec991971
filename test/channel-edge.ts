// A bare edge process with the channels of test/channels-instance-loss.test.ts and short presence
// timings, for the tests that SIGKILL it: `REDIS_URL`, `JWT_SECRET`, `PORT`.
import Fastify from 'fastify'
import { notifyEdge } from '../plugins/index.js'
import { CHANNEL_EDGE_STREAMS, CHANNEL_EDGE_TIMINGS } from './channel-edge-options.js'

const app = Fastify({ logger: { level: 'info' } })
await app.register(notifyEdge, {
  jwt: { secret: process.env.JWT_SECRET! },
  streams: CHANNEL_EDGE_STREAMS,
  redis: process.env.REDIS_URL!,
  ...CHANNEL_EDGE_TIMINGS
})
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
