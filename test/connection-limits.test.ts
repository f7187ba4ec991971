// Connection limits (SPEC section 15): per instance (503 + Retry-After before the upgrade, not
// ready at the cap), handshakes per second, and per user across two instances on Redis.
import t from 'tap'
import WebSocket from 'ws'
import { build, connect, token, type Edge } from './helpers.js'
import { redisServer, until } from './redis-server.js'
import { sdk } from './client-helpers.js'
import { retryAfterDelay } from '../client/close-codes.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

/** How a handshake ended: 101 with the open socket, or the refusal's status and Retry-After. */
function attempt (t: Test, url: string): Promise<{ status: number, retryAfter?: string, code?: string, socket?: WebSocket }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    t.teardown(() => socket.terminate())
    socket.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('end', () => {
        socket.terminate()
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, code: JSON.parse(Buffer.concat(chunks).toString()).code })
      })
    })
    socket.once('open', () => resolve({ status: 101, socket }))
    socket.once('error', reject)
  })
}

t.test('at its connection cap an instance answers 503 with Retry-After before the upgrade, is not ready, and keeps its sockets', async (t) => {
  const edge = await build(t, { limits: { maxConnections: 2, retryAfter: 7 }, metrics: {} })
  const first = (await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)).client
  await connect(t, `${edge.ws}/public`)
  t.equal(edge.app.notifyLimits.ready(), false)
  const refused = await attempt(t, `${edge.ws}/ws?token=${token(edge.app, 'bob')}`)
  t.same({ status: refused.status, retryAfter: refused.retryAfter, code: refused.code }, { status: 503, retryAfter: '7', code: 'FST_NOTIFY_EDGE_BUSY' })
  t.equal((await first.request({ event: 'ping' }, 'pong')).event, 'pong', 'open sockets unharmed')
  await first.close()
  await until('the slot is back', () => edge.app.notifyLimits.ready())
  t.equal((await attempt(t, `${edge.ws}/ws?token=${token(edge.app, 'bob')}`)).status, 101)
  t.equal((await attempt(t, `${edge.ws}/ws?token=bad`)).status, 401, 'authentication comes first')
  const metrics = await (await fetch(`${edge.http}/metrics`)).text()
  t.match(metrics, /notify_edge_handshakes_refused_total\{reason="connections"\} 1/)
})

t.test('handshakes per second: over the rate, 503 with Retry-After: 1', async (t) => {
  const edge = await build(t, { limits: { maxHandshakesPerSecond: 3 } })
  const results = await Promise.all(Array.from({ length: 10 }, () => attempt(t, `${edge.ws}/public`)))
  const accepted = results.filter((r) => r.status === 101).length
  t.ok(accepted >= 3 && accepted <= 6, `${accepted} accepted (3 a second, the burst may straddle two)`)
  const refused = results.filter((r) => r.status === 503)
  t.ok(refused.length >= 4)
  t.ok(refused.every((r) => r.retryAfter === '1'))
})

t.test('registration refuses bad limits', async (t) => {
  const { registrationError } = await import('./helpers.js')
  t.equal((await registrationError({ limits: { maxConnections: 0 } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ limits: { counter: {} } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
})

t.test('200 connections of one user racing across two instances against a cap of 50: at most 50 open', async (t) => {
  const server = await redisServer(t)
  const prefix = `lim${Math.random().toString(36).slice(2, 8)}`
  const edges: Edge[] = []
  for (let i = 0; i < 2; i++) edges.push(await build(t, { redis: server.url, topicPrefix: prefix, limits: { maxConnectionsPerUser: 50 } }))
  const jwt = token(edges[0].app, 'alice')
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => attempt(t, `${edges[i % 2].ws}/ws?token=${jwt}`)))
  const open = results.filter((r) => r.status === 101)
  t.ok(open.length <= 50, `${open.length} open`)
  t.ok(open.length >= 40, 'and the cap is reached, near enough')
  t.ok(results.every((r) => r.status === 101 || (r.status === 429 && r.code === 'FST_NOTIFY_TOO_MANY_CONNECTIONS')), 'the others get 429')
  const bob = await attempt(t, `${edges[1].ws}/ws?token=${token(edges[1].app, 'bob')}`)
  t.equal(bob.status, 101, 'another user is not counted with alice')
  for (const r of open.slice(0, 10)) r.socket!.close()
  await until('slots given back', async () => (await attempt(t, `${edges[0].ws}/ws?token=${jwt}`)).status === 101)
  // A dead instance's slots go with its liveness key: closing one instance frees alice's slots there.
  await edges[1].app.close()
  const after = await attempt(t, `${edges[0].ws}/ws?token=${jwt}`)
  t.equal(after.status, 101, 'the closed instance\'s slots are dropped')
  await server.stop()
  const down = await attempt(t, `${edges[0].ws}/ws?token=${jwt}`)
  t.equal(down.status, 503, 'counts unavailable: 503, not an unchecked socket')
})

t.test('the SDK waits as long as Retry-After asks, jittered, then connects when the instance has room', async (t) => {
  const edge = await build(t, { limits: { maxConnections: 1, retryAfter: 1 } })
  const holder = (await connect(t, `${edge.ws}/public`)).client
  const { events } = sdk(t, edge, 'alice', { backoff: { min: 50, max: 100 } })
  const refused = await events.next('disconnected')
  t.equal(refused.code, 1006)
  t.ok(refused.willRetry)
  t.ok(refused.delay! >= 1000 && refused.delay! <= 1500, `waits ${refused.delay} ms, not the 50-100 ms backoff`)
  await holder.close()
  await events.next('connected', () => true, 5000)
  t.equal(retryAfterDelay('2', () => 1), 3000)
  t.equal(retryAfterDelay('Wed, 21 Oct 2015 07:28:00 GMT'), null)
  t.equal(retryAfterDelay(undefined), null)
})

t.test('app.injectWS() has no TCP connection to count: not limited', async (t) => {
  const edge = await build(t, { limits: { maxConnections: 1 } })
  const sockets = [await edge.app.injectWS('/public'), await edge.app.injectWS('/public')]
  t.equal(edge.app.notifyLimits.open, 0)
  for (const socket of sockets) socket.terminate()
})

t.test('without Redis the per-user count is this instance\'s', async (t) => {
  const edge = await build(t, { limits: { maxConnectionsPerUser: 1 }, metrics: {} })
  const jwt = token(edge.app, 'alice')
  const first = await attempt(t, `${edge.ws}/ws?token=${jwt}`)
  t.equal(first.status, 101)
  const second = await attempt(t, `${edge.ws}/ws?token=${jwt}`)
  t.same({ status: second.status, code: second.code }, { status: 429, code: 'FST_NOTIFY_TOO_MANY_CONNECTIONS' })
  first.socket!.close()
  await until('the slot is back', async () => (await attempt(t, `${edge.ws}/ws?token=${jwt}`)).status === 101)
  t.match(await (await fetch(`${edge.http}/metrics`)).text(), /notify_edge_handshakes_refused_total\{reason="user"\} [1-9]/)
})
