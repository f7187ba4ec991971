import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { notifyEdge } from '../../plugins/index.js'
import { STREAMS } from '../../example-app/app.js'
import { argument } from '../lib/ipc.js'
import { API_KEY, PRIVATE_STREAM, PUBLIC_STREAM, SECRET } from '../lib/shared.js'
import { control } from './control.js'

// Contender (a): this project, registered as the example app does (its streams, and with --redis
// its `redis` option: bus, tickets on Redis). History is left out: no other contender keeps any;
// docs/history.md measures what it adds. Its `POST /notifications` feeds the sustained scenario;
// --flush-interval sets the /ws route's write coalescing; `--presence off` leaves presence out,
// to measure its cost.

const redis = argument('redis')
const flushInterval = argument('flush-interval')
const presence = argument('presence') === 'off' ? false : undefined
const app = Fastify({ logger: false })
await app.register(notifyEdge, {
  jwt: { secret: SECRET },
  streams: STREAMS.map(({ history: _history, ...stream }) => stream),
  redis,
  publishApi: { apiKey: API_KEY },
  ...(flushInterval === undefined ? {} : { routes: [{ path: '/ws', flushInterval: Number(flushInterval) }, { path: '/public', anonymous: true }] }),
  presence
})
await app.listen({ port: 0, host: '127.0.0.1' })

control({
  port: (app.server.address() as AddressInfo).port,
  publishPublic: (data) => app.notify.publish({ stream: PUBLIC_STREAM, data }),
  publishPrivate: (user, data) => app.notify.publish({ stream: PRIVATE_STREAM, user, data }),
  connections: () => app.notifyStreams.get('/ws')!.connections.size,
  close: () => app.close()
})
