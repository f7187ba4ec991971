import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { defineStreams, notifyEdge } from '../../plugins/index.js'
import { argument, serve } from '../lib/ipc.js'
import { SECRET, verifyToken } from '../lib/shared.js'

// The chat scenario's servers (bench/chat.ts). `--kind edge` is this project: one channel stream
// `room` whose keys are the rooms, open to any signed-in user, client publish allowed, member
// presence off unless `--member-presence on`; and `orders.place` over RPC next to the same route
// over HTTP. `--kind socketio` is Socket.IO rooms: `join`, then client emit → server →
// to(room).emit, with an acknowledgement. With `--redis <url>` each runs as one of several
// instances: the edge on its Redis bus, Socket.IO on @socket.io/redis-adapter.

declare const gc: () => void

const kind = argument('kind')
const redisUrl = argument('redis')
const memberPresence = argument('member-presence') === 'on'
// The frames of the RPC comparison come far faster than a chat member's: no limit in the way.
const generous = { perSecond: 100_000, burst: 100_000 }
let close: () => Promise<unknown>
let port: number

if (kind === 'edge') {
  const app = Fastify({ logger: false })
  let orders = 0
  await app.register(notifyEdge, {
    jwt: { secret: SECRET },
    streams: defineStreams([{ name: 'room', kind: 'channel', openAccess: true, members: memberPresence, clientPublish: true }]),
    redis: redisUrl,
    routes: [{ path: '/ws', frameRate: generous }],
    upstream: { publishRate: generous, userPublishRate: generous, methods: { 'orders.place': { method: 'POST', url: '/orders' } }, maxCallsInFlight: 64 }
  })
  app.post('/orders', {
    schema: { body: { type: 'object', properties: { item: { type: 'string' } } } }
  }, async (request, reply) => reply.code(201).send({ orderId: `${request.notifyPrincipal?.user ?? 'http'}-${++orders}` }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = (app.server.address() as AddressInfo).port
  close = () => app.close()
} else if (kind === 'socketio') {
  const server = http.createServer((_req, res) => res.writeHead(404).end())
  const io = new Server(server, { transports: ['websocket'], serveClient: false })
  const redis = redisUrl === undefined ? [] : [new Redis(redisUrl), new Redis(redisUrl)]
  if (redis.length > 0) {
    // Imported only here: the driver runs this with --redis only when the adapter is installed.
    const { createAdapter } = await import('@socket.io/redis-adapter')
    for (const client of redis) client.on('error', (err: Error) => console.error('socket.io: redis', err.message))
    // A client may be ready already (the import above can take longer than connecting): waiting
    // for its 'ready' then would wait for ever, as the chat bench did on a loaded CI machine.
    await Promise.all(redis.map((client) => client.status === 'ready' ? null : once(client, 'ready')))
    io.adapter(createAdapter(redis[0], redis[1]))
  }
  io.use((socket, next) => {
    const user = verifyToken(String((socket.handshake.auth as { token?: unknown }).token))
    if (user === null) return next(new Error('unauthorized'))
    socket.data.user = user
    next()
  })
  io.on('connection', (socket) => {
    socket.on('join', (room: unknown, ack: unknown) => {
      if (typeof room !== 'string' || typeof ack !== 'function') return
      socket.join(room)
      ack({ ok: true })
    })
    socket.on('chat', (room: unknown, data: unknown, ack: unknown) => {
      if (typeof room !== 'string' || typeof ack !== 'function' || !socket.rooms.has(room)) return
      io.to(room).emit('message', { room, from: socket.data.user, data })
      ack({ ok: true })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
  close = async () => {
    await io.close()
    await Promise.all(redis.map((client) => client.quit()))
  }
} else {
  throw new Error(`--kind edge or socketio, not ${String(kind)}`)
}

let cpu = process.cpuUsage()
serve({
  // Earlier garbage collected before a measured window, so that it is not billed to it.
  gc: () => { gc(); gc() },
  'cpu-start': () => { cpu = process.cpuUsage() },
  cpu: () => {
    const used = process.cpuUsage(cpu)
    return { us: used.user + used.system }
  },
  close: async () => {
    await close()
    setImmediate(() => process.exit(0))
  }
}, { port })
