import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { createAdapter } from '@socket.io/redis-adapter'
import { argument } from '../lib/ipc.js'
import { PRIVATE_STREAM, PUBLIC_STREAM, verifyToken, type Notification } from '../lib/shared.js'
import { control } from './control.js'
import { handlePublish } from './ingress.js'
import { TicketDesk } from './tickets.js'

// Contender (d): Socket.IO 4, WebSocket transport only; rooms stand for topics, and
// @socket.io/redis-adapter carries broadcasts between instances when given --redis.

const redisUrl = argument('redis')
const desk = new TicketDesk()
const server = http.createServer((req, res) => {
  if (!desk.handle(req, res) && !handlePublish(req, res, (stream, data) => publish(stream, '', data))) res.writeHead(404).end()
})
// Fastify's default (Node's is 5 s), as the edge has: the sustained feeder's pool stays open between feeds.
server.keepAliveTimeout = 72_000
const io = new Server(server, { transports: ['websocket'], serveClient: false })
const redis = redisUrl === undefined ? null : [new Redis(redisUrl), new Redis(redisUrl)]
if (redis !== null) {
  // As for the other contenders: connections ready before anything subscribes.
  for (const client of redis) client.on('error', (err: Error) => console.error('socket.io: redis', err.message))
  await Promise.all(redis.map((client) => once(client, 'ready')))
  io.adapter(createAdapter(redis[0], redis[1]))
}
let seq = 0

const roomOf = (stream: string, user: string): string =>
  stream === PRIVATE_STREAM ? `u/${stream}/${user}` : `p/${stream}`

io.use((socket, next) => {
  const { ticket, token } = socket.handshake.auth as { ticket?: unknown, token?: unknown }
  const user = typeof ticket === 'string'
    ? desk.redeem(ticket)
    : typeof token === 'string' ? verifyToken(token) : null
  if (user === null) return next(new Error('unauthorized'))
  socket.data.user = user
  next()
})

io.on('connection', (socket) => {
  socket.on('subscribe', (streams: unknown, ack: unknown) => {
    if (!Array.isArray(streams) || typeof ack !== 'function') return
    for (const stream of streams) socket.join(roomOf(String(stream), socket.data.user))
    ack({ streams })
  })
})

function publish (stream: string, user: string, data: Notification): string {
  const id = `${Date.now()}-${++seq}`
  io.to(roomOf(stream, user)).emit('message', { stream, id, ts: Date.now(), data })
  return id
}

await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))

control({
  port: (server.address() as AddressInfo).port,
  publishPublic: (data) => publish(PUBLIC_STREAM, '', data),
  publishPrivate: (user, data) => publish(PRIVATE_STREAM, user, data),
  connections: () => io.engine.clientsCount,
  close: async () => {
    await io.close()
    if (redis !== null) await Promise.all(redis.map((client) => client.quit()))
  }
})
