// The example app with DATABASE_URL (orders in PostgreSQL, notified through the outbox) and with
// NATS_URL (the order service publishes to JetStream, the edge consumes it): the demo works with either.
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { login } from './example-process.js'
import { API_KEY, SECRET, connect, ticket } from './helpers.js'
import { natsNames, NATS_URL } from './nats.js'
import { sharedPostgres } from './postgres.js'
import { until } from './redis-server.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function demo (t: Test, env: Record<string, string>) {
  const app = await buildApp(loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ORDER_STEP_MS: '20', ...env }).config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const http = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  return { app, http, ws: http.replace(/^http/, 'ws') }
}

/** Places an order for alice and checks she sees placed, paid, shipped in order, and GET /orders answers it. */
async function orderFlow (t: Test, http: string, ws: string): Promise<string> {
  const jwt = await login(http, 'alice')
  const { client } = await connect(t, `${ws}/ws?ticket=${await ticket(http, jwt)}`)
  await client.subscribe('order')
  const res = await fetch(`${http}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice' }) })
  t.equal(res.status, 202)
  const { orderId } = await res.json() as { orderId: string }
  for (const status of ['placed', 'paid', 'shipped']) t.same((await client.event('message', 5000)).data, { orderId, status })
  await client.request({ event: 'ping' }, 'pong')
  t.same(client.messages(), [], 'each once')
  const orders = await (await fetch(`${http}/orders`, { headers: { authorization: `Bearer ${jwt}` } })).json()
  t.same(orders, { orders: [{ orderId, status: 'shipped' }] })
  return orderId
}

t.test('with DATABASE_URL the order service stores orders in PostgreSQL and notifies through the outbox', async (t) => {
  const db = await sharedPostgres(t)
  // The demo's own table goes to the test's schema too.
  const url = `${db.url}?options=${encodeURIComponent(`-c search_path=${db.schema}`)}`
  const { app, http, ws } = await demo(t, { DATABASE_URL: url, OUTBOX_TABLE: db.table })
  await until('the relay', () => app.notifyOutbox.health().state === 'relaying', 10_000)
  const orderId = await orderFlow(t, http, ws)
  // The relay marks a batch after publishing it: the last row may reach the socket first.
  await until('the marks', async () => (await db.pool.query(`SELECT count(*)::int AS n FROM ${db.table} WHERE done_at IS NULL`)).rows[0].n === 0)
  const { rows } = await db.pool.query(`SELECT data, done_at IS NOT NULL AS done FROM ${db.table} ORDER BY id`)
  t.same(rows.map((r) => [JSON.parse(r.data).status, r.done]), [['placed', true], ['paid', true], ['shipped', true]], 'three outbox rows, all relayed')
  t.same((await db.pool.query(`SELECT status FROM ${db.schema}.demo_orders WHERE order_id = $1`, [orderId])).rows, [{ status: 'shipped' }])
  t.match((await (await fetch(`${http}/health`)).json()), { status: 'ok', outbox: { state: 'relaying', table: db.table } })
})

t.test('with NATS_URL the order service publishes to JetStream and the edge consumes it', async (t) => {
  const names = natsNames(t)
  const { app, http, ws } = await demo(t, { NATS_URL, NATS_STREAM: names.stream, NATS_CONSUMER: names.consumer, NATS_SUBJECT_PREFIX: names.subjectPrefix })
  await until('consuming', () => app.notifyJetStream.health().state === 'consuming', 10_000)
  await orderFlow(t, http, ws)
  t.equal(app.notifyJetStream.stats.acked, 3)
  t.match((await (await fetch(`${http}/health`)).json()), { status: 'ok', jetstream: { state: 'consuming', stream: names.stream } })
})

t.test('with NATS_URL unreachable the order service answers 503 and the rest of the demo serves', async (t) => {
  const { http } = await demo(t, { NATS_URL: 'nats://127.0.0.1:1' })
  const res = await fetch(`${http}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice' }) })
  t.equal(res.status, 503)
  t.match(await res.json(), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' })
  t.match(await (await fetch(`${http}/health`)).json(), { status: 'degraded', jetstream: { state: 'connecting' } })
})
