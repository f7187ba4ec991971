import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Redis } from 'ioredis'
import * as ws from 'ws'
import WebSocket, { WebSocketServer, type RawData } from 'ws'
import { argument } from '../lib/ipc.js'
import { PRIVATE_STREAM, PUBLIC_STREAM, type Notification } from '../lib/shared.js'
import { control } from './control.js'
import { handlePublish } from './ingress.js'
import { TicketDesk } from './tickets.js'
import { listenOnFastify } from './fastify-layer.js'

// Contenders (b) and (c): a plain `ws` server speaking the project's protocol.
// --mode send:  JSON.stringify and ws.send per client.
// --mode frame: serialize and frame once per message, write that frame to every socket,
//               corking each socket until the next turn of the event loop.
// With --redis, topics travel over Redis pub/sub, one channel per topic.
// With --http fastify, tickets and handshakes go through Fastify, @fastify/jwt and
// @fastify/websocket instead of node:http (fastify-layer.ts).

interface Message { stream: string, id: string, ts: number, data: Notification }

class Client {
  readonly topics = new Set<string>()
  constructor (readonly ws: WebSocket, readonly user: string) {}
}

const frameOnce = argument('mode') === 'frame'
const redisUrl = argument('redis')
const desk = new TicketDesk()
const topics = new Map<string, { clients: Set<Client>, ready: Promise<unknown> }>()
const pub = redisUrl === undefined ? null : new Redis(redisUrl)
const sub = redisUrl === undefined ? null : new Redis(redisUrl)
// A SUBSCRIBE sent before ioredis's ready check (INFO) makes that check fail on a busy machine.
let closing = false
for (const client of [pub, sub]) client?.on('error', (err: Error) => { if (!closing) console.error('ws: redis', err.message) })
if (pub !== null && sub !== null) await Promise.all([once(pub, 'ready'), once(sub, 'ready')])
sub?.on('message', (topic: string, text: string) => deliver(topic, JSON.parse(text)))
const clients = new Set<Client>()
let seq = 0

const topicOf = (stream: string, user: string): string =>
  stream === PRIVATE_STREAM ? `bench/u/${stream}/${user}` : `bench/p/${stream}`

// ws exports its Sender at runtime; @types/ws does not declare it.
const { Sender } = ws as unknown as { Sender: { frame (data: Buffer, options: object): Buffer[] } }
const FRAME_OPTIONS = { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false }
const corked: Socket[] = []
function uncorkAll (): void {
  for (const socket of corked) socket.uncork()
  corked.length = 0
}

function deliver (topic: string, message: Message): void {
  const entry = topics.get(topic)
  if (entry === undefined) return
  if (!frameOnce) {
    for (const client of entry.clients) {
      client.ws.send(JSON.stringify({ event: 'message', stream: message.stream, id: message.id, ts: message.ts, data: message.data }))
    }
    return
  }
  const payload = Buffer.from(JSON.stringify({ event: 'message', ...message }))
  const frame = Buffer.concat(Sender.frame(payload, FRAME_OPTIONS))
  for (const client of entry.clients) {
    if (client.ws.readyState !== WebSocket.OPEN) continue
    const socket = (client.ws as unknown as { _socket: Socket })._socket
    if (socket.writableCorked === 0) {
      socket.cork()
      if (corked.push(socket) === 1) setImmediate(uncorkAll)
    }
    socket.write(frame)
  }
}

function publish (stream: string, user: string | null, data: Notification): string {
  const message: Message = { stream, id: `${Date.now()}-${++seq}`, ts: Date.now(), data }
  const topic = topicOf(stream, user ?? '')
  if (pub === null) deliver(topic, message)
  else pub.publish(topic, JSON.stringify(message)).catch((err) => console.error('ws: redis', err.message))
  return message.id
}

async function subscribe (client: Client, streams: string[], id: unknown): Promise<void> {
  for (const stream of streams) {
    const topic = topicOf(stream, client.user)
    if (client.topics.has(topic)) continue
    client.topics.add(topic)
    let entry = topics.get(topic)
    if (entry === undefined) {
      entry = { clients: new Set(), ready: sub === null ? Promise.resolve() : sub.subscribe(topic) }
      topics.set(topic, entry)
    }
    entry.clients.add(client)
    await entry.ready
  }
  client.ws.send(JSON.stringify({ event: 'subscribed', streams, id }))
}

function release (client: Client): void {
  clients.delete(client)
  for (const topic of client.topics) {
    const entry = topics.get(topic)
    if (entry === undefined || !entry.clients.delete(client) || entry.clients.size > 0) continue
    topics.delete(topic)
    sub?.unsubscribe(topic).catch(() => {})
  }
}

function onConnection (ws: WebSocket, user: string): void {
  const client = new Client(ws, user)
  clients.add(client)
  ws.on('message', (data: RawData) => {
    let frame: { event?: string, streams?: string[], id?: unknown }
    try {
      frame = JSON.parse(data.toString())
    } catch {
      return
    }
    if (frame.event === 'subscribe' && Array.isArray(frame.streams)) {
      subscribe(client, frame.streams, frame.id).catch((err) => console.error('ws: subscribe', err.message))
    } else if (frame.event === 'ping') {
      ws.send(JSON.stringify({ event: 'pong', id: frame.id }))
    }
  })
  ws.once('close', () => release(client))
  ws.send(JSON.stringify({ event: 'welcome', connection: randomUUID(), user, expiresAt: null }))
}

const viaFastify = argument('http') === 'fastify' ? await listenOnFastify(desk, onConnection) : null
const server = viaFastify?.app.server ?? http.createServer((req, res) => {
  if (!desk.handle(req, res) && !handlePublish(req, res, (stream, data) => publish(stream, null, data))) res.writeHead(404).end()
})
if (viaFastify === null) {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536, clientTracking: false })
  // Fastify's default (Node's is 5 s), as the edge has: the sustained feeder's pool stays open between feeds.
  server.keepAliveTimeout = 72_000
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const user = url.pathname === '/ws' ? desk.authenticate(url.searchParams.get('ticket'), url.searchParams.get('token')) : null
    if (user === null) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, user))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
}

control({
  port: (server.address() as AddressInfo).port,
  publishPublic: (data) => publish(PUBLIC_STREAM, null, data),
  publishPrivate: (user, data) => publish(PRIVATE_STREAM, user, data),
  connections: () => clients.size,
  close: async () => {
    closing = true
    for (const client of clients) client.ws.terminate()
    await (viaFastify?.app.close() ?? new Promise<void>((resolve) => server.close(() => resolve())))
    await Promise.all([pub?.quit(), sub?.quit()])
  }
})
