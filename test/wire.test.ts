import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import t from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket, { WebSocketServer } from 'ws'
import { notifyEdge } from '../plugins/index.js'
import { FlushScheduler, FrameWriter, OutboundFrame } from '../plugins/streams/wire.js'
import { STREAMS } from '../example-app/app.js'
import { build, connect, connectUser, SECRET, token, urls, type Frame } from './helpers.js'

/** A plain ws server on loopback whose first accepted socket is returned with its client. */
type Test = { teardown: (fn: () => unknown) => void }

async function socketPair (t: Test): Promise<{ server: WebSocket, client: WebSocket, received: string[] }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.teardown(() => new Promise((resolve) => wss.close(resolve)))
  await once(wss, 'listening')
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { perMessageDeflate: false })
  t.teardown(() => client.terminate())
  const received: string[] = []
  client.on('message', (data) => received.push(data.toString()))
  const [[server]] = await Promise.all([once(wss, 'connection'), once(client, 'open')])
  return { server, client, received }
}

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve))
}

t.test('the ws internals the direct write relies on are there', async (t) => {
  const { server } = await socketPair(t)
  const internals = server as unknown as { _socket: Socket, _sender: { _bufferedBytes: number }, _extensions: object }
  t.type(internals._socket.cork, 'function')
  t.equal(internals._sender._bufferedBytes, 0)
  t.same(internals._extensions, {})
  t.equal(new OutboundFrame('{"a":1}').wire.toString('latin1'), '\x81\x07{"a":1}')
})

t.test('a burst written in one job reaches the client whole and in order, and counts in bufferedAmount', async (t) => {
  const { server, received } = await socketPair(t)
  const writer = new FrameWriter(server, new FlushScheduler(0, 16384))
  for (let i = 0; i < 100; i++) writer.write(new OutboundFrame(JSON.stringify({ i, pad: 'x'.repeat(i * 10) })))
  t.ok(server.bufferedAmount > 0, 'corked until the current job ends')
  await until(() => received.length === 100)
  t.same(received.map((text) => JSON.parse(text).i), Array.from({ length: 100 }, (_, i) => i))
  t.equal(server.bufferedAmount, 0)
})

t.test('frames ws still holds are not overtaken: the writer goes through ws.send', async (t) => {
  const { server, received } = await socketPair(t)
  const writer = new FrameWriter(server, new FlushScheduler(0, 16384))
  const sender = (server as unknown as { _sender: { _bufferedBytes: number } })._sender
  let sends = 0
  const send = server.send.bind(server)
  server.send = ((...args: Parameters<WebSocket['send']>) => { sends++; send(...args) }) as WebSocket['send']
  sender._bufferedBytes = 1
  writer.write(new OutboundFrame('"through ws"'))
  sender._bufferedBytes = 0
  writer.write(new OutboundFrame('"direct"'))
  await until(() => received.length === 2)
  t.same(received, ['"through ws"', '"direct"'])
  t.equal(sends, 1)
})

/** Counts the TCP socket's writes (one `_write` or `_writev` per chunk or corked batch handed on). */
function countWrites (server: WebSocket): () => number {
  const tcp = (server as unknown as { _socket: Socket & { _write: Function, _writev: Function } })._socket
  let writes = 0
  const write = tcp._write.bind(tcp)
  const writev = tcp._writev.bind(tcp)
  tcp._write = (...args: unknown[]) => { writes++; return write(...args) }
  tcp._writev = (...args: unknown[]) => { writes++; return writev(...args) }
  return () => writes
}

t.test('a held socket keeps its frames past scheduled flushes; its answer takes them along in one write', async (t) => {
  const { server, received } = await socketPair(t)
  const writer = new FrameWriter(server, new FlushScheduler(0, 16384))
  const writes = countWrites(server)
  writer.hold()
  writer.write(new OutboundFrame('"own copy"'))
  // Two turns of the loop: an unheld socket is flushed at the end of the job.
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(writes(), 0, 'nothing handed to the kernel while held')
  t.ok(server.bufferedAmount > 0, 'held bytes count in bufferedAmount')
  writer.sendNow('"answer"')
  t.equal(writes(), 1, 'the held frame and the answer in one write')
  await until(() => received.length === 2)
  t.same(received, ['"own copy"', '"answer"'])
  // The hold ended with the answer: the next frame goes at the end of its job.
  writer.write(new OutboundFrame('"next"'))
  await until(() => received.length === 3)
  t.equal(writes(), 2)
})

t.test('release() ends a hold no answer ended; an answer with nothing corked goes through ws', async (t) => {
  const { server, received } = await socketPair(t)
  const writer = new FrameWriter(server, new FlushScheduler(0, 16384))
  writer.hold()
  writer.write(new OutboundFrame('"held"'))
  writer.release()
  writer.release()
  await until(() => received.length === 1)
  let sends = 0
  const send = server.send.bind(server)
  server.send = ((...args: Parameters<WebSocket['send']>) => { sends++; send(...args) }) as WebSocket['send']
  writer.sendNow('"alone"')
  await until(() => received.length === 2)
  t.same(received, ['"held"', '"alone"'])
  t.equal(sends, 1)
})

t.test('nothing is written once the socket is closing', async (t) => {
  const { server, client, received } = await socketPair(t)
  const writer = new FrameWriter(server, new FlushScheduler(0, 16384))
  server.close(1000, 'bye')
  writer.write(new OutboundFrame('"late"'))
  const [code] = await once(client, 'close')
  t.equal(code, 1000)
  t.same(received, [])
})

t.test('with permessage-deflate negotiated, fan-out goes through ws and still arrives', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(websocket, { options: { perMessageDeflate: true } })
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { ws } = urls(app)
  const { client } = await connect(t, `${ws}/ws?token=${token(app, 'alice')}`)
  t.equal(client.socket.extensions, 'permessage-deflate')
  await client.subscribe('promotional')
  const published = await Promise.all([1, 2, 3].map((n) => app.notify.publish({ stream: 'promotional', data: { n } })))
  const got: Frame[] = []
  for (let i = 0; i < 3; i++) got.push(await client.event('message'))
  t.same(got.map((m) => m.data.n), [1, 2, 3])
  t.same(got.map((m) => m.id), published.map((p) => (p as { id: string }).id))
})

t.test('an open socket keeps neither the upgrade request nor its response', async (t) => {
  const edge = await build(t)
  const client = await connectUser(t, edge, 'alice')
  await client.subscribe('promotional')
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  const tcp = (connection.socket as unknown as { _socket: Socket & { _httpMessage: unknown } })._socket
  t.equal(tcp._httpMessage, null)
  t.equal(connection.socket.listenerCount('error'), 1)
})

t.test('a socket error still ends the socket: an oversized frame closes with 1009', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', maxPayload: 1024 }] })
  const client = await connectUser(t, edge, 'alice')
  client.send('x'.repeat(2048))
  t.equal(await client.closed, 1009)
})

t.test('a credential expiring after the window gets its timer from the sweep, then closes with 4001', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice', '2m')}`)
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  const now = Date.now
  t.teardown(() => { Date.now = now })
  const skew = connection.principal.expiresAt! - now() - 300
  Date.now = () => now() + skew
  connection.checkExpiry()
  connection.checkExpiry()
  t.equal(await client.closed, 4001)
})
