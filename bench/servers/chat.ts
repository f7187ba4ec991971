import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import { Server } from 'socket.io'
import { defineStreams, notifyEdge } from '../../plugins/index.js'
import { argument, serve } from '../lib/ipc.js'
import { SECRET, verifyToken } from '../lib/shared.js'

// The chat scenario's servers (bench/chat.ts): `--kind edge` is this project with one public
// stream per room that clients publish to (rooms are modelled as declared public streams until
// channels land), and `orders.place` over RPC next to the same route over HTTP; `--kind socketio`
// is Socket.IO rooms: client emit → server → to(room).emit, with an acknowledgement.

const kind = argument('kind')
const rooms = Number(argument('rooms') ?? 10)
const generous = { perSecond: 100_000, burst: 100_000 }
let cpu = process.cpuUsage()
let close: () => Promise<unknown>
let port: number

if (kind === 'edge') {
  const app = Fastify({ logger: false })
  let orders = 0
  await app.register(notifyEdge, {
    jwt: { secret: SECRET },
    streams: defineStreams(Array.from({ length: rooms }, (_, i) => ({ name: `room-${i}`, kind: 'public' as const, clientPublish: true as const }))),
    routes: [{ path: '/ws', frameRate: generous }],
    upstream: { publishRate: generous, userPublishRate: generous, methods: { 'orders.place': { method: 'POST', url: '/orders' } }, maxCallsInFlight: 64 }
  })
  app.post('/orders', {
    schema: { body: { type: 'object', properties: { item: { type: 'string' } } } }
  }, async (request, reply) => reply.code(201).send({ orderId: `${request.notifyPrincipal?.user ?? 'http'}-${++orders}` }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  port = (app.server.address() as AddressInfo).port
  close = () => app.close()
} else {
  const server = http.createServer((_req, res) => res.writeHead(404).end())
  const io = new Server(server, { transports: ['websocket'], serveClient: false })
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
  close = () => io.close()
}

serve({
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
