import t from 'tap'
import { Registry } from 'prom-client'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { LAG_SAMPLE_EVERY } from '../plugins/streams/connection.js'
import { authFailureReason } from '../plugins/metrics.js'
import { API_KEY, SECRET, build, connect, connectUser, handshakeStatus, publish, urls } from './helpers.js'

/** The value of one sample of the Prometheus text, or undefined. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const have = match[2]?.split(',') ?? []
    if (wanted.every((label) => have.includes(label))) return Number(match[3])
  }
  return undefined
}

async function scrape (http: string): Promise<string> {
  const res = await fetch(`${http}/metrics`)
  if (res.status !== 200 || !res.headers.get('content-type')?.startsWith('text/plain')) throw new Error(`/metrics: ${res.status}`)
  return res.text()
}

t.test('GET /metrics reports connections, subscriptions, messages, auth failures and timings', async (t) => {
  const edge = await build(t, { metrics: {} })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order', 'promotional')
  const { client: visitor } = await connect(t, `${edge.ws}/public`)
  await visitor.subscribe('promotional')
  for (let i = 0; i < LAG_SAMPLE_EVERY; i++) {
    t.equal((await publish(edge.http, { stream: 'promotional', data: { i } })).status, 202)
  }
  await publish(edge.http, { stream: 'order', user: 'alice', data: { orderId: '1', status: 'placed' } })
  for (let i = 0; i < LAG_SAMPLE_EVERY; i++) await visitor.event('message')
  await alice.next((f) => f.stream === 'order')
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${'A'.repeat(43)}`), 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws`), 401)
  t.equal((await fetch(`${edge.http}/ws/ticket`, { method: 'POST' })).status, 401)

  const text = await scrape(edge.http)
  t.equal(sample(text, 'notify_edge_connections', { route: '/ws' }), 1)
  t.equal(sample(text, 'notify_edge_connections', { route: '/public' }), 1)
  t.equal(sample(text, 'notify_edge_subscriptions', { route: '/ws' }), 2)
  t.equal(sample(text, 'notify_edge_subscriptions', { route: '/public' }), 1)
  t.equal(sample(text, 'notify_edge_bus_topics'), 2, 'promotional and alice\'s order')
  t.equal(sample(text, 'notify_edge_messages_published_total', { stream: 'promotional' }), LAG_SAMPLE_EVERY)
  t.equal(sample(text, 'notify_edge_messages_published_total', { stream: 'order' }), 1)
  t.equal(sample(text, 'notify_edge_messages_delivered_total', { route: '/public' }), LAG_SAMPLE_EVERY)
  t.equal(sample(text, 'notify_edge_messages_delivered_total', { route: '/ws' }), LAG_SAMPLE_EVERY + 1)
  t.equal(sample(text, 'notify_edge_messages_dropped_total', { route: '/ws' }), 0)
  t.equal(sample(text, 'notify_edge_slow_consumer_closes_total', { route: '/ws' }), 0)
  t.equal(sample(text, 'notify_edge_auth_failures_total', { stage: 'handshake', reason: 'ticket' }), 1)
  t.equal(sample(text, 'notify_edge_auth_failures_total', { stage: 'handshake', reason: 'missing' }), 1)
  t.equal(sample(text, 'notify_edge_auth_failures_total', { stage: 'ticket', reason: 'missing' }), 1)
  t.equal(sample(text, 'notify_edge_handshake_duration_seconds_count', { route: '/ws' }), 1)
  t.equal(sample(text, 'notify_edge_handshake_duration_seconds_count', { route: '/public' }), 1)
  t.ok(sample(text, 'notify_edge_delivery_lag_seconds_count')! >= 2, 'one delivery in 64 is sampled')
  t.ok(sample(text, 'notify_edge_process_resident_memory_bytes')! > 0, 'process metrics are there too')

  await alice.close()
  await visitor.close()
  const after = await scrape(edge.http)
  t.equal(sample(after, 'notify_edge_connections', { route: '/ws' }), 0)
  t.equal(sample(after, 'notify_edge_subscriptions', { route: '/ws' }), 0)
})

t.test('each app has its own registry: two edges in one process do not collide', async (t) => {
  const one = await build(t, { metrics: { defaultMetrics: false } })
  const two = await build(t, { metrics: { defaultMetrics: false } })
  await publish(one.http, { stream: 'promotional', data: {} })
  t.equal(sample(await scrape(one.http), 'notify_edge_messages_published_total', { stream: 'promotional' }), 1)
  t.equal(sample(await scrape(two.http), 'notify_edge_messages_published_total', { stream: 'promotional' }), undefined)
})

t.test('metrics can go to a given registry without a route, under another prefix', async (t) => {
  const registry = new Registry()
  const edge = await build(t, { metrics: { path: false, registry, prefix: 'edge_', defaultMetrics: false } })
  t.equal((await fetch(`${edge.http}/metrics`)).status, 404)
  t.equal(edge.app.notifyMetrics.registry, registry)
  await publish(edge.http, { stream: 'promotional', data: {} })
  t.equal(sample(await registry.metrics(), 'edge_messages_published_total', { stream: 'promotional' }), 1)
})

t.test('a publish the bus refuses is counted as a failure', async (t) => {
  const edge = await build(t, { metrics: { defaultMetrics: false }, bus: { emitter: { emit () {}, on () {}, removeListener () {}, close () {} } as never, publishTimeout: 50 } })
  t.equal((await publish(edge.http, { stream: 'promotional', data: {} })).status, 503)
  t.equal(sample(await scrape(edge.http), 'notify_edge_publish_failures_total', { stream: 'promotional' }), 1)
})

t.test('the example app serves /metrics', async (t) => {
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.match(await scrape(urls(app).http), /notify_edge_connections\{route="\/ws"\} 0/)
})

t.test('bad metrics options fail registration', async (t) => {
  for (const metrics of [{ path: 'metrics' }, { prefix: '1x' }, { registry: {} as Registry }]) {
    await t.rejects(build(t, { metrics }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  }
})

t.test('auth failure reasons are a small fixed set', async (t) => {
  t.equal(authFailureReason({ code: 'FST_NOTIFY_FORBIDDEN_ORIGIN' }), 'origin')
  t.equal(authFailureReason({ code: 'FST_NOTIFY_TICKET_STORE_UNAVAILABLE' }), 'store_unavailable')
  t.equal(authFailureReason({ code: 'FST_NOTIFY_UNAUTHORIZED', message: 'Unauthorized: FAST_JWT_EXPIRED' }), 'expired')
  t.equal(authFailureReason({ code: 'FST_NOTIFY_UNAUTHORIZED', message: 'Unauthorized: FAST_JWT_MALFORMED' }), 'invalid')
  t.equal(authFailureReason(new Error('boom')), 'other')
})
