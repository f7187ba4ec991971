import { once, type EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'
import type { MQEmitter } from 'mqemitter'
import { notifyEdge } from '../../plugins/index.js'
import { STREAMS } from '../../example-app/app.js'
import { argument } from '../lib/ipc.js'
import { PRIVATE_STREAM, PUBLIC_STREAM, SECRET } from '../lib/shared.js'
import { control } from './control.js'

// Contender (a): this project, registered as the example app does.

const redisUrl = argument('redis')
let bus
if (redisUrl !== undefined) {
  // Our own connections, ready before anything subscribes: mqemitter-redis turns on ioredis
  // auto-pipelining for those it creates, which waits for each batch's reply before sending the
  // next, so publishes queue up under load (p50 over 100 ms at 1,000 msg/s on a busy machine).
  const subConn = new Redis(redisUrl)
  const pubConn = new Redis(redisUrl)
  await Promise.all([once(subConn, 'ready'), once(pubConn, 'ready')])
  const emitter = mqemitterRedis({ subConn, pubConn })
  // mqemitter-redis reports Redis errors on `state`; unheard, they would crash the process.
  const { state } = emitter as unknown as { state: EventEmitter }
  state.on('error', (err: Error) => console.error('edge: redis', err.message))
  bus = { emitter: emitter as unknown as MQEmitter, closeEmitter: true }
}

const app = Fastify({ logger: false })
await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, bus })
await app.listen({ port: 0, host: '127.0.0.1' })

control({
  port: (app.server.address() as AddressInfo).port,
  publishPublic: (data) => app.notify.publish({ stream: PUBLIC_STREAM, data }),
  publishPrivate: (user, data) => app.notify.publish({ stream: PRIVATE_STREAM, user, data }),
  connections: () => app.notifyStreams.get('/ws')!.connections.size,
  close: () => app.close()
})
