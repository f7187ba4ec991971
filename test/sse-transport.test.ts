// SSE responses under load and on HTTP/2: a slow reader is a slow consumer, an HTTP/2 session
// carries many responses on one TCP connection, presence and metrics count responses as sockets.

import { connect as http2Connect } from 'node:http2'
import t from 'tap'
import type { FastifyServerOptions } from 'fastify'
import { API_KEY, build, publish, ticket, token } from './helpers.js'
import { SseClient } from './sse-helpers.js'

const SSE_SECRET = 'an-sse-secret-that-is-at-least-32-characters'
const BIG = 'x'.repeat(100_000)

t.test('a reader that does not read is closed as a slow consumer (policy close)', async (t) => {
  const e = await build(t, { sse: { secret: SSE_SECRET, routes: [{ path: '/public/sse', anonymous: true, maxBufferedBytes: 256 * 1024 }] } })
  const slow = await SseClient.open(`${e.http}/public/sse?streams=promotional`, {}, { paused: true })
  t.teardown(() => slow.close())
  const route = e.app.notifyStreams.get('/public/sse')!
  await slow.until(() => route.connections.size === 1 && route.topicCount() === 1)
  for (let i = 0; i < 200 && route.connections.size > 0; i++) await e.app.notify.publish({ stream: 'promotional', data: { i, text: BIG } })
  await slow.until(() => route.connections.size === 0, 10_000, 'the slow response to be cut')
  t.equal(route.stats.slowConsumerCloses, 1)
  t.ok(route.stats.dropped >= 1)
})

t.test('policy drop: a slow reader misses nothing once it reads again (replayed from history)', async (t) => {
  const e = await build(t, { sse: { secret: SSE_SECRET, routes: [{ path: '/public/sse', anonymous: true, maxBufferedBytes: 256 * 1024, slowConsumer: 'drop' }] } })
  const slow = await SseClient.open(`${e.http}/public/sse?streams=promotional`, {}, { paused: true })
  t.teardown(() => slow.close())
  const route = e.app.notifyStreams.get('/public/sse')!
  await slow.until(() => route.topicCount() === 1)
  for (let i = 0; i < 60; i++) await e.app.notify.publish({ stream: 'promotional', data: { i, text: BIG } })
  t.ok(route.stats.dropped > 0, `dropped ${route.stats.dropped} while over the limit`)
  slow.resume()
  await slow.until(() => slow.messages().length >= 60, 20_000, '60 messages')
  t.same(slow.messages().map((m) => m.data.i), Array.from({ length: 60 }, (_, i) => i), 'all, in order, once')
  t.equal(route.connections.size, 1, 'the response lives on')
})

t.test('HTTP/2: many responses on one TCP connection', async (t) => {
  const e = await build(t, { sse: { secret: SSE_SECRET } }, { logger: false, http2: true } as FastifyServerOptions)
  const session = http2Connect(e.http)
  t.teardown(() => session.destroy())
  const jwt = token(e.app, 'alice')
  const access = await new Promise<string>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/sse/access', authorization: `Bearer ${jwt}` })
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => resolve((JSON.parse(body) as { access: string }).access))
    req.on('error', reject)
    req.end()
  })
  const streams = Array.from({ length: 8 }, () => {
    const req = session.request({ ':path': `/sse?streams=order,promotional&access=${access}`, accept: 'text/event-stream' })
    const state = { status: 0, text: '' }
    req.setEncoding('utf8')
    req.on('response', (headers) => { state.status = Number(headers[':status']) })
    req.on('data', (chunk: string) => { state.text += chunk })
    return state
  })
  const route = e.app.notifyStreams.get('/sse')!
  const deadline = Date.now() + 5000
  while (route.connections.size < 8 || streams.some((s) => !s.text.includes('event: subscribed'))) {
    if (Date.now() > deadline) throw new Error('HTTP/2 responses did not open')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const res = await new Promise<number>((resolve) => {
    const req = session.request({ ':method': 'POST', ':path': '/notifications', 'content-type': 'application/json', 'x-api-key': API_KEY })
    req.on('response', (headers) => resolve(Number(headers[':status'])))
    req.resume()
    req.end(JSON.stringify({ stream: 'order', user: 'alice', data: { orderId: 'h2', status: 'placed' } }))
  })
  t.equal(res, 202)
  while (streams.some((s) => !s.text.includes('"orderId":"h2"'))) {
    if (Date.now() > deadline + 5000) throw new Error('HTTP/2 responses did not receive the message')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  t.ok(streams.every((s) => s.status === 200), 'eight responses, one session')
  t.ok(streams.every((s) => /id: [^\n]+\nevent: message\ndata: \{"event":"message","stream":"order"/.test(s.text)))
  const closed = new Promise((resolve) => session.once('goaway', resolve))
  await e.app.close()
  await closed
  t.pass('a drain ends with GOAWAY (Fastify closes HTTP/2 sessions), so that the reconnect opens a new connection, to another instance')
})

t.test('presence and metrics count SSE responses', async (t) => {
  const e = await build(t, { sse: { secret: SSE_SECRET }, metrics: {} })
  const sse = await SseClient.open(`${e.http}/sse?streams=order,promotional&ticket=${await ticket(e.http, token(e.app, 'dave'))}`)
  t.teardown(() => sse.close())
  await sse.next('subscribed')
  t.same(await e.app.notify.presence({ user: 'dave' }), { users: { dave: { connections: 1, streams: ['order', 'promotional'] } } })
  const res = await publish(e.http, { stream: 'order', user: 'dave', data: { orderId: 'm', status: 'placed' } })
  t.equal(res.body.online, true, 'a publish sees the SSE response as online')
  await sse.next('message')
  const metrics = await (await fetch(`${e.http}/metrics`)).text()
  t.match(metrics, /notify_edge_connections\{route="\/sse"\} 1/)
  t.match(metrics, /route="\/sse"[^\n]* 1\n/)
  sse.close()
  await sse.until(() => e.app.notifyStreams.get('/sse')!.connections.size === 0)
  t.same(await e.app.notify.presence({ user: 'dave' }), { users: { dave: { connections: 0, streams: [] } } })
})

t.test('maxConnectionsPerUser: over it, 429 before the stream starts', async (t) => {
  const e = await build(t, { sse: { secret: SSE_SECRET, routes: [{ path: '/sse', maxConnectionsPerUser: 1 }] } })
  const first = await SseClient.open(`${e.http}/sse?streams=order&token=${token(e.app, 'erin')}`)
  t.teardown(() => first.close())
  await first.next('subscribed')
  const second = await SseClient.open(`${e.http}/sse?streams=order&token=${token(e.app, 'erin')}`)
  t.teardown(() => second.close())
  t.equal(second.status, 429)
})
