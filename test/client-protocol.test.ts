// The SDK against a scripted peer on a real socket, for frames our server never sends.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { connect, type NotifyClientOptions } from '../client/index.js'
import { Recorder } from './client-helpers.js'

type Test = { teardown: (fn: () => unknown) => void }

async function peer (t: Test, onConnection: (socket: WebSocket) => void): Promise<{ url: string, server: WebSocketServer }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  server.on('connection', onConnection)
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => {
    for (const socket of server.clients) socket.terminate()
    server.close(resolve)
  }))
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, server }
}

function client (t: Test, options: NotifyClientOptions): Recorder {
  const events = new Recorder(connect({ WebSocket, backoff: { min: 20, max: 50 }, ...options }))
  t.teardown(() => events.client.close())
  return events
}

const welcome = (expiresAt: number | null = null) => JSON.stringify({ event: 'welcome', connection: 'c1', user: 'alice', expiresAt })

t.test('reports frames it cannot understand, emits gaps and keeps going', async (t) => {
  const { url } = await peer(t, (socket) => {
    socket.send('not json')
    socket.send(Buffer.from('{"event":"welcome"}'), { binary: true })
    socket.send('[1]')
    socket.send('{"event":"message","stream":"order"}')
    socket.send(welcome())
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString())
      if (frame.event !== 'subscribe') return
      socket.send(JSON.stringify({ event: 'subscribed', streams: ['order', 7], gaps: ['order', null], id: frame.id }))
      socket.send('{"event":"refreshed"}')
      socket.send('{"event":"from-the-future"}')
      socket.send('{"event":"message","stream":"order","id":"5-0","data":{"n":1}}')
      socket.send('{"event":"gap","streams":["order",3]}')
      socket.send('{"event":"gap"}')
    })
  })
  const events = client(t, { url })
  events.subscribe('order')
  for (let i = 0; i < 4; i++) t.match(await events.next('error'), { code: 'NOTIFY_CLIENT_BAD_FRAME' })
  t.same(await events.next('gap'), { stream: 'order' })
  t.same(await events.next('subscribed'), { streams: ['order'] })
  await events.next('connected')
  const message = await events.next('message')
  t.match(message, { stream: 'order', id: '5-0', data: { n: 1 } })
  t.type(message.ts, 'number', 'a missing ts is filled in')
  t.same(await events.next('gap'), { stream: 'order' }, 'a gap frame on the open socket')
  t.same(events.taken('refreshed'), [])
})

t.test('gives up on a server that never sends welcome and tries again', async (t) => {
  let connections = 0
  const { url } = await peer(t, () => { connections++ })
  const events = client(t, { url, connectTimeout: 100 })
  t.match(await events.next('disconnected'), { code: 1006, reason: 'no welcome within connectTimeout', willRetry: true })
  await events.next('disconnected')
  t.ok(connections >= 2)
  t.equal(events.client.state, 'connecting', 'never connected yet')
})

t.test('without terminate(), as in browsers, a silent socket is closed with 4000', async (t) => {
  let closed: Promise<unknown[]> | undefined
  const { url } = await peer(t, (socket) => { closed ??= once(socket, 'close') })
  class BrowserLikeWebSocket extends WebSocket {
    constructor (url: string) {
      super(url)
      Object.defineProperty(this, 'terminate', { value: undefined })
    }
  }
  const events = client(t, { url, connectTimeout: 100, WebSocket: BrowserLikeWebSocket })
  await events.next('disconnected')
  await events.client.close()
  const [code] = await closed!
  t.equal(code, 4000)
})

t.test('a failing getToken at refresh time is reported', async (t) => {
  const { url } = await peer(t, (socket) => socket.send(welcome(Date.now() + 200)))
  let calls = 0
  const events = client(t, {
    url,
    getToken: () => {
      if (calls++ === 0) return 'a-jwt-for-the-handshake'
      throw new Error('token service down')
    }
  })
  await events.next('connected')
  t.match(await events.next('error'), {
    code: 'NOTIFY_CLIENT_CREDENTIAL_FAILED',
    message: /refresh/,
    cause: { message: 'token service down' }
  })
  t.equal(calls, 2)
})
