// 2,000 SSE responses and 2,000 WebSockets on one instance at once, all receiving. The clients
// are lean (a raw TCP socket per SSE response, counting events) so that the test measures the
// server, and opens them in batches to stay CI-friendly on two cores.

import { connect as tcpConnect, type Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { build } from './helpers.js'

const EACH = 2000
const BATCH = 200
const MESSAGES = 3

/** A raw HTTP/1.1 SSE request on `/public/sse`; counts `event: message` lines as they arrive. */
function sseClient (port: number, counts: { sse: number }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => {
      socket.write('GET /public/sse?streams=promotional HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
    })
    let subscribed = false
    let tail = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      // Whole lines only: the partial last line waits for the next chunk, so nothing counts twice.
      const text = tail + chunk
      const end = text.lastIndexOf('\n') + 1
      tail = text.slice(end)
      const lines = text.slice(0, end)
      if (!subscribed && lines.includes('event: subscribed\n')) {
        subscribed = true
        resolve(socket)
      }
      counts.sse += lines.split('event: message\n').length - 1
    })
    socket.on('error', reject)
  })
}

function wsClient (url: string, counts: { ws: number }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    socket.on('message', (data) => {
      const text = data.toString()
      if (text.startsWith('{"event":"subscribed"')) resolve(socket)
      else if (text.startsWith('{"event":"message"')) counts.ws++
    })
    socket.once('open', () => socket.send('{"event":"subscribe","streams":["promotional"]}'))
    socket.once('error', reject)
  })
}

t.test(`${EACH} SSE responses and ${EACH} WebSockets on one instance, both receiving`, async (t) => {
  const e = await build(t, { sse: { secret: 'an-sse-secret-that-is-at-least-32-characters' } })
  const port = Number(new URL(e.http).port)
  const counts = { sse: 0, ws: 0 }
  const sse: Socket[] = []
  const ws: WebSocket[] = []
  t.teardown(() => {
    for (const socket of sse) socket.destroy()
    for (const socket of ws) socket.terminate()
  })
  for (let i = 0; i < EACH; i += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, j) => i + j)
    const [s, w] = await Promise.all([
      Promise.all(batch.map(() => sseClient(port, counts))),
      Promise.all(batch.map(() => wsClient(`${e.ws}/public`, counts)))
    ])
    sse.push(...s)
    ws.push(...w)
  }
  t.equal(e.app.notifyStreams.get('/public/sse')!.connections.size, EACH)
  t.equal(e.app.notifyStreams.get('/public')!.connections.size, EACH)
  for (let n = 0; n < MESSAGES; n++) await e.app.notify.publish({ stream: 'promotional', data: { n } })
  const deadline = Date.now() + 30_000
  while (counts.sse < EACH * MESSAGES || counts.ws < EACH * MESSAGES) {
    if (Date.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(counts.sse, EACH * MESSAGES, 'every SSE response got every message')
  t.equal(counts.ws, EACH * MESSAGES, 'every WebSocket got every message')
})
