import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../client/index.js'
import { build, publish, SECRET, ticket, token } from './helpers.js'
import { Recorder, sdk, serverConnections } from './client-helpers.js'

const order = (status: string) => ({ stream: 'order', user: 'alice', data: { orderId: 'o1', status } })

t.test('receives its private messages and stops after unsubscribe', async (t) => {
  const edge = await build(t)
  const { events } = sdk(t, edge, 'alice')
  const unsubscribe = events.subscribe('order')
  events.subscribe('promotional')
  const connected = await events.next('connected')
  t.match(connected, { user: 'alice', reconnect: false })
  t.equal(events.client.state, 'open')

  const { body } = await publish(edge.http, order('placed'))
  t.match(await events.next('message'), { stream: 'order', id: body.id, data: { orderId: 'o1', status: 'placed' } })

  unsubscribe()
  unsubscribe()
  events.subscribe('reward')
  // Frames are handled in order: once reward is subscribed, order is gone.
  await events.next('subscribed', (e) => e.streams.includes('reward'))
  await publish(edge.http, order('paid'))
  const promo = await publish(edge.http, { stream: 'promotional', data: { text: 'sale' } })
  t.match(await events.next('message'), { stream: 'promotional', id: promo.body.id })
  t.same(events.taken('message'), [], 'no order message after unsubscribe')
})

t.test('restores subscriptions with a new ticket after the server drops the socket', async (t) => {
  const edge = await build(t)
  const { events, tickets } = sdk(t, edge, 'alice')
  events.subscribe('order')
  const first = await events.next('connected')
  const seen = await publish(edge.http, order('placed'))
  await events.next('message')

  for (const connection of serverConnections(edge.app)) connection.socket.terminate()
  t.match(await events.next('disconnected'), { code: 1006, willRetry: true })
  t.equal(events.client.state, 'reconnecting')
  const second = await events.next('connected')
  t.equal(second.reconnect, true)
  t.not(second.connection, first.connection)
  t.equal(tickets(), 2, 'one ticket per connect')
  t.same([...serverConnections(edge.app)[0].topics.keys()], ['order'])

  const next = await publish(edge.http, order('paid'))
  const message = await events.next('message')
  t.equal(message.id, next.body.id)
  t.not(message.id, seen.body.id)
})

t.test('handshake refusals back off exponentially within jittered bounds', async (t) => {
  const edge = await build(t)
  const min = 40
  const max = 200
  let refusals = 3
  const attempts: number[] = []
  const events = new Recorder(connect({
    url: `${edge.ws}/ws`,
    // An unknown ticket is refused with 401 before the upgrade: the client sees 1006.
    getTicket: async () => {
      attempts.push(performance.now())
      return refusals-- > 0 ? 'not-a-ticket' : ticket(edge.http, token(edge.app, 'alice'))
    },
    WebSocket,
    backoff: { min, max }
  }))
  t.teardown(() => events.client.close())
  const delays: number[] = []
  for (let i = 0; i < 3; i++) {
    const lost = await events.next('disconnected')
    t.match(lost, { code: 1006, willRetry: true })
    delays.push(lost.delay!)
  }
  await events.next('connected')
  t.equal(attempts.length, 4)
  delays.forEach((delay, attempt) => {
    const ceiling = Math.min(max, min * 2 ** (attempt + 1))
    t.ok(delay >= min && delay <= ceiling, `attempt ${attempt}: ${delay} ms within [${min}, ${ceiling}]`)
    const waited = attempts[attempt + 1] - attempts[attempt]
    t.ok(waited >= delay - 2, `attempt ${attempt}: waited ${Math.round(waited)} ms for a ${delay} ms delay`)
  })
  t.equal(events.client.state, 'open')
})

t.test('reconnects on 4001 at expiry with a newly fetched ticket', async (t) => {
  const edge = await build(t)
  const { events, tickets } = sdk(t, edge, 'alice', { expiresIn: '2s' })
  events.subscribe('order')
  const first = await events.next('connected')
  t.ok(first.expiresAt! - Date.now() <= 2000)
  t.match(await events.next('disconnected', () => true, 4000), { code: 4001, willRetry: true })
  t.match(await events.next('connected'), { reconnect: true })
  t.equal(tickets(), 2)
})

t.test('refreshes the connection before it expires when given getToken', async (t) => {
  const edge = await build(t)
  const { events } = sdk(t, edge, 'alice', {
    expiresIn: '2s',
    getToken: () => edge.app.jwt.sign({ sub: 'alice' }, { expiresIn: '2s' })
  })
  const { connection } = await events.next('connected')
  for (let i = 0; i < 2; i++) t.ok((await events.next('refreshed')).expiresAt > Date.now())
  t.same(events.taken('disconnected'), [], 'never closed with 4001')
  t.equal(serverConnections(edge.app)[0].id, connection)
})

t.test('stops for good on 4003: a refresh token for another user', async (t) => {
  const edge = await build(t)
  const { events, tickets } = sdk(t, edge, 'alice', {
    expiresIn: '2s',
    getToken: () => edge.app.jwt.sign({ sub: 'mallory' }, { expiresIn: '1h' })
  })
  await events.next('connected')
  t.match(await events.next('error'), { code: 'UNAUTHORIZED' })
  t.match(await events.next('disconnected'), { code: 4003, willRetry: false, delay: null })
  t.equal(events.client.state, 'closed')
  t.equal(tickets(), 1)
  await events.client.close()
})

t.test('detects a silent server with the application ping and reconnects', async (t) => {
  const edge = await build(t)
  const { events } = sdk(t, edge, 'alice', { pingInterval: 50, pingTimeout: 150 })
  const first = await events.next('connected')
  // Several pings are answered before the server goes silent.
  const silent = serverConnections(edge.app)[0]
  silent.socket.pause()
  t.match(await events.next('disconnected'), { code: 1006, reason: 'no pong within pingTimeout', willRetry: true })
  const second = await events.next('connected')
  t.not(second.connection, first.connection)
  silent.socket.terminate()
})

t.test('pings only a server it has not heard from: in Node the server\'s protocol pings stand in for its own', async (t) => {
  const sent: string[] = []
  class Counting extends WebSocket {
    send (data: string): void {
      sent.push(data)
      super.send(data)
    }
  }
  const appPings = (): number => sent.filter((frame) => frame.includes('"event":"ping"')).length
  const pinging = await build(t, { routes: [{ path: '/ws', heartbeatInterval: 100 }] })
  const heard = sdk(t, pinging, 'alice', { pingInterval: 250, WebSocket: Counting as unknown as typeof WebSocket })
  await heard.events.next('connected')
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(appPings(), 0, 'protocol pings every 100 ms: no application ping in 1.5 s of 250 ms intervals')
  await heard.client.close()

  const quiet = await build(t, { routes: [{ path: '/ws', heartbeatInterval: false }] })
  const silent = sdk(t, quiet, 'bob', { pingInterval: 100, WebSocket: Counting as unknown as typeof WebSocket })
  await silent.events.next('connected')
  await new Promise((resolve) => setTimeout(resolve, 1000))
  // Each ping is answered, and a pong heard skips the next interval: one every other interval.
  t.ok(appPings() >= 3, `a server that sends nothing is pinged: ${appPings()} in 1 s of 100 ms intervals`)
  t.equal(silent.client.state, 'open', 'and its pongs keep the connection')
})

t.test('drops duplicate and older message ids', async (t) => {
  const edge = await build(t)
  const { events } = sdk(t, edge, 'alice')
  events.subscribe('order')
  await events.next('connected')
  const topic = edge.app.notify.streams.get('order')!.topic('alice')
  const frame = (id: string) => JSON.stringify({ event: 'message', stream: 'order', id, ts: Date.now(), data: { orderId: 'o1', status: id } })
  const a = await publish(edge.http, order('placed'))
  const id = a.body.id as string
  // At-least-once delivery: the same message twice, then one from before it.
  await edge.app.notifyBus.publish({ topic, id, frame: frame(id) })
  await edge.app.notifyBus.publish({ topic, id: '1-0', frame: frame('1-0') })
  const b = await publish(edge.http, order('paid'))
  t.equal((await events.next('message')).id, id)
  t.equal((await events.next('message')).id, b.body.id)
  t.same(events.taken('message'), [])
})

t.test('reconnects to the next server on the same address after a 1001 drain', async (t) => {
  const first = await build(t)
  const { port } = first.app.server.address() as AddressInfo
  const { events } = sdk(t, first, 'alice')
  events.subscribe('order')
  await events.next('connected')
  await first.app.close()
  t.match(await events.next('disconnected'), { code: 1001, willRetry: true })
  const { default: Fastify } = await import('fastify')
  const { notifyEdge } = await import('../plugins/index.js')
  const { STREAMS } = await import('../example-app/app.js')
  const second = Fastify()
  t.teardown(() => second.close())
  await second.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS })
  await second.listen({ port, host: '127.0.0.1' })
  t.match(await events.next('connected', () => true, 8000), { reconnect: true })
  const id = await second.notify.publish({ stream: 'order', user: 'alice', data: { orderId: 'o2', status: 'placed' } })
  t.same((await events.next('message')).id, (id as { id: string }).id)
})

t.test('the anonymous endpoint needs no credential and server errors become error events', async (t) => {
  const edge = await build(t)
  const events = new Recorder(connect({ url: `${edge.http}/public`, WebSocket }))
  t.teardown(() => events.client.close())
  events.subscribe('order')
  events.subscribe('promotional')
  t.match(await events.next('error'), { name: 'NotifyClientError', code: 'FORBIDDEN', stream: 'order' })
  t.match(await events.next('connected'), { user: null, expiresAt: null })
  const promo = await publish(edge.http, { stream: 'promotional', data: { text: 'sale' } })
  t.match(await events.next('message'), { id: promo.body.id, data: { text: 'sale' } })
})

t.test('a throwing handler or listener is reported and does not stop the others', async (t) => {
  const edge = await build(t)
  const { client, events } = sdk(t, edge, 'alice')
  client.subscribe('order', () => { throw new Error('handler bug') })
  events.subscribe('order')
  client.subscribe('order', () => t.fail('unsubscribed at once'))()
  client.on('connected', () => { throw new Error('listener bug') })
  client.on('error', () => { throw new Error('nowhere to go') })
  const removed = () => t.fail('a removed listener is not called')
  client.on('connected', removed)
  client.off('connected', removed)
  await events.next('connected')
  const listenerError = await events.next('error')
  t.match(listenerError, { code: 'NOTIFY_CLIENT_HANDLER_FAILED', cause: { message: 'listener bug' } })
  await publish(edge.http, order('placed'))
  await events.next('message')
  t.match(await events.next('error'), { code: 'NOTIFY_CLIENT_HANDLER_FAILED', cause: { message: 'handler bug' } })
})

t.test('a failing getTicket is reported and retried', async (t) => {
  const edge = await build(t)
  let calls = 0
  const { events } = sdk(t, edge, 'alice', {
    getTicket: async () => {
      if (++calls === 1) throw new Error('auth service down')
      if (calls === 2) return ''
      return ticket(edge.http, token(edge.app, 'alice'))
    }
  })
  t.match(await events.next('error'), { code: 'NOTIFY_CLIENT_CREDENTIAL_FAILED', cause: { message: 'auth service down' } })
  t.match(await events.next('error'), { code: 'NOTIFY_CLIENT_CREDENTIAL_FAILED', cause: { name: 'TypeError' } })
  await events.next('connected')
  t.equal(calls, 3)
})

t.test('close() closes the socket with 1000 and stops everything', async (t) => {
  const edge = await build(t)
  const { client, events } = sdk(t, edge, 'alice')
  await events.next('connected')
  const server = serverConnections(edge.app)[0]
  const [closed] = await Promise.all([once(server.socket, 'close'), client.close(), client.close()])
  t.equal(closed[0], 1000)
  t.match(events.taken('disconnected'), [{ code: 1000, willRetry: false }])
  t.equal(client.state, 'closed')
  await client.close()
})

t.test('close() while the ticket is being fetched opens no socket', async (t) => {
  const edge = await build(t)
  let sockets = 0
  class CountingWebSocket extends WebSocket {
    constructor (url: string) {
      super(url)
      sockets++
    }
  }
  let fetched: Promise<string> | undefined
  const client = connect({
    url: `${edge.ws}/ws`,
    WebSocket: CountingWebSocket,
    getTicket: () => (fetched = ticket(edge.http, token(edge.app, 'alice')))
  })
  await client.close()
  await fetched
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(sockets, 0)
  t.equal(client.state, 'closed')
})
