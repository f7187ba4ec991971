// The client SDK on SSE, on Node with a small EventSource (test/sse-helpers.ts).
import t from 'tap'
import WebSocket from 'ws'
import { connect } from '../client/index.js'
import type { EventSourceConstructor } from '../client/sse.js'
import { build, publish, ticket, token } from './helpers.js'
import { NodeEventSource } from './sse-helpers.js'

const EventSource = NodeEventSource as unknown as EventSourceConstructor
const secret = 'an-sse-secret-that-is-at-least-32-characters'

t.test('transport sse: receives, answers pings, resumes after the response ends, and reopens for a new stream', async (t) => {
  const e = await build(t, { sse: { secret } })
  const client = connect({ url: `${e.ws}/ws`, transport: 'sse', EventSource, getToken: () => token(e.app, 'alice'), pingInterval: 50, backoff: { min: 10, max: 50 } })
  t.teardown(() => client.close())
  const orders: number[] = []
  client.subscribe('order', (message) => orders.push((message.data as { n: number }).n))
  await new Promise<void>((resolve) => client.on('connected', () => resolve()))
  await publish(e.http, { stream: 'order', user: 'alice', data: { orderId: 'a', status: 'placed', n: 1 } })
  while (orders.length < 1) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 120))
  t.equal(client.state, 'open', 'pings are answered: the watchdog does not fire')
  const route = e.app.notifyStreams.get('/sse')!
  for (const connection of route.connections) connection.socket.terminate()
  await publish(e.http, { stream: 'order', user: 'alice', data: { orderId: 'a', status: 'paid', n: 2 } })
  while (orders.length < 2) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(orders, [1, 2], 'resumed with lastEventId, nothing twice')
  const promos: unknown[] = []
  client.subscribe('promotional', (message) => promos.push(message.data))
  while (route.connections.size !== 1 || [...route.connections][0].subscriptions !== 2) await new Promise((resolve) => setTimeout(resolve, 10))
  await publish(e.http, { stream: 'promotional', data: { p: 1 } })
  while (promos.length < 1) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(promos, [{ p: 1 }])
})

t.test('transport auto falls back to SSE when the WebSocket upgrade fails; a ticket-only client uses tickets', async (t) => {
  const e = await build(t, { sse: { secret } })
  e.app.server.prependListener('upgrade', (_request: unknown, socket: { destroy: () => void }) => socket.destroy())
  const client = connect({ url: `${e.ws}/ws`, transport: 'auto', EventSource, WebSocket: WebSocket as never, getTicket: () => ticket(e.http, token(e.app, 'bob')), backoff: { min: 10, max: 50 } })
  t.teardown(() => client.close())
  client.on('error', () => {})
  const got: unknown[] = []
  client.subscribe('order', (message) => got.push(message.data))
  await new Promise<void>((resolve) => client.on('connected', () => resolve()))
  t.equal(e.app.notifyStreams.get('/sse')!.connections.size, 1)
  await publish(e.http, { stream: 'order', user: 'bob', data: { orderId: 'b', status: 'placed' } })
  while (got.length < 1) await new Promise((resolve) => setTimeout(resolve, 10))
  t.pass('received on SSE')
})
