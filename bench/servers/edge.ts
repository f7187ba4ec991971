import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { notifyEdge } from '../../plugins/index.js'
import { STREAMS } from '../../example-app/app.js'
import { argument } from '../lib/ipc.js'
import { API_KEY, PRIVATE_STREAM, PUBLIC_STREAM, SECRET } from '../lib/shared.js'
import { control } from './control.js'
import { scaleHandlers } from '../scale/server.js'
import { SCALE_STREAMS } from '../scale/streams.js'

// Contender (a): this project, registered as the example app does (its streams, and with --redis
// its `redis` option: bus, tickets on Redis). History is left out: no other contender keeps any;
// docs/history.md measures what it adds. Its `POST /notifications` feeds the sustained scenario;
// --flush-interval sets the /ws route's write coalescing; `--presence off` leaves presence out,
// to measure its cost; `--ticket-rate-limit off` leaves the ticket route's rate limit out.
// With --amqp <url> --exchange --queue it also runs the RabbitMQ and gRPC ingresses (gRPC on a
// free port) for the ingress scenario.

// --redis-cluster host:port,… runs it on Redis Cluster (sharded pub/sub) instead.
const cluster = argument('redis-cluster')?.split(',').map((node) => ({ host: node.split(':')[0], port: Number(node.split(':')[1]) }))
const redis = cluster !== undefined ? { cluster } : argument('redis')
const flushInterval = argument('flush-interval')
// --heartbeat-interval sets the /ws route's protocol pings (bench/scale/probe.ts shortens it to amplify their cost).
const heartbeatInterval = argument('heartbeat-interval')
const presence = argument('presence') === 'off' ? false : undefined
const amqp = argument('amqp')
const tickets = argument('ticket-rate-limit') === 'off' ? { rateLimit: false as const } : undefined
// --emitter lean runs the bus on LeanRedisEmitter instead of mqemitter-redis.
const redisEmitter = argument('emitter') as 'lean' | undefined
// --bus-flush-interval sets the bus's write coalescing on Redis.
const busFlushInterval = argument('bus-flush-interval')
// --tracing on: OpenTelemetry tracing with a real SDK whose exporter drops every batch, so the
// figures are what spans cost the edge (creating, ending, batching), not a collector's network.
const tracing = argument('tracing') === 'on'
if (tracing) {
  const { BatchSpanProcessor, NodeTracerProvider } = await import('@opentelemetry/sdk-trace-node')
  const discard = { export: (_spans: unknown[], done: (result: { code: 0 }) => void) => done({ code: 0 }), shutdown: async () => {} }
  new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] }).register()
}
// --nats <url> --nats-stream --nats-consumer --nats-prefix consumes JetStream; --outbox <postgres url>
// --outbox-table relays that outbox table (the pipelines scenario).
const nats = argument('nats')
const outbox = argument('outbox')
// --streams scale: the scale scenario's streams (a private one and 100 public ones, with history).
const scaleStreams = argument('streams') === 'scale'
// --history on keeps the example streams' history (bench/jetstream-probe.ts: what it adds per message).
const keepHistory = argument('history') === 'on'
const app = Fastify({ logger: false })
await app.register(notifyEdge, {
  jwt: { secret: SECRET },
  streams: scaleStreams ? SCALE_STREAMS : keepHistory ? STREAMS : STREAMS.map(({ history: _history, ...stream }) => stream),
  redis,
  bus: { redisEmitter, flushInterval: busFlushInterval === undefined ? undefined : Number(busFlushInterval) },
  publishApi: { apiKey: API_KEY },
  tickets,
  ...(flushInterval === undefined && heartbeatInterval === undefined
    ? {}
    : {
        routes: [{
          path: '/ws',
          flushInterval: flushInterval === undefined ? undefined : Number(flushInterval),
          heartbeatInterval: heartbeatInterval === undefined ? undefined : Number(heartbeatInterval)
        }, { path: '/public', anonymous: true }]
      }),
  presence,
  tracing,
  ...(amqp === undefined
    ? {}
    : {
        amqp: { url: amqp, exchange: argument('exchange'), queue: argument('queue') },
        grpc: { apiKey: API_KEY, port: 0 }
      }),
  jetstream: nats === undefined ? undefined : { servers: nats, stream: argument('nats-stream'), consumer: argument('nats-consumer'), subjectPrefix: argument('nats-prefix') },
  outbox: outbox === undefined ? undefined : { database: outbox, table: argument('outbox-table') }
})
// --listen-backlog: the accept queue (Node's default 511; the kernel caps it at net.core.somaxconn).
// The scale scenario's storm sends an instance thousands of connects within a second.
const backlog = argument('listen-backlog')
await app.listen({ port: 0, host: '127.0.0.1', ...(backlog === undefined ? {} : { backlog: Number(backlog) }) })

control({
  port: (app.server.address() as AddressInfo).port,
  publishPublic: (data) => app.notify.publish({ stream: PUBLIC_STREAM, data }),
  publishPrivate: (user, data) => app.notify.publish({ stream: PRIVATE_STREAM, user, data }),
  connections: () => app.notifyStreams.get('/ws')!.connections.size,
  close: () => app.close()
}, {
  ...(scaleStreams ? scaleHandlers(app) : {}),
  ingress: async () => {
    if (amqp !== undefined) await until(() => app.notifyAmqp.health().state === 'consuming')
    if (nats !== undefined) await until(() => app.notifyJetStream.health().state === 'consuming')
    if (outbox !== undefined) await until(() => app.notifyOutbox.health().state === 'relaying')
    return { grpcPort: amqp === undefined ? null : app.notifyGrpc.port }
  },
  'jetstream-stats': () => ({ ...app.notifyJetStream.stats })
})

async function until (check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20))
}
