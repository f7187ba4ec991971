import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { loadEdgeConfig, loadMethods } from '../bin/config.js'
import { buildEdge } from '../bin/edge.js'
import { notifyBackend } from '../plugins/index.js'
import { rpcMethodsAt } from '../example-app/methods.js'
import { orderRoutes } from '../example-app/orders.js'
import { STREAMS } from '../example-app/streams.js'
import { connectUser, urls } from './helpers.js'

const CALLER_SECRET = 'a-caller-secret-of-at-least-32-characters'

t.test('METHODS_CONFIG: a JSON file or a module; anything else is a setting error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'notify-edge-methods-'))
  await writeFile(join(dir, 'methods.json'), JSON.stringify({ 'orders.list': { method: 'GET', url: 'http://orders/orders' } }))
  await writeFile(join(dir, 'methods.mjs'), 'export const methods = { ping: { url: "http://orders/ping" } }\n')
  await writeFile(join(dir, 'array.json'), '[]')
  await writeFile(join(dir, 'broken.json'), '{')
  t.equal(await loadMethods(undefined), undefined)
  t.same(await loadMethods(join(dir, 'methods.json')), { 'orders.list': { method: 'GET', url: 'http://orders/orders' } })
  t.same(await loadMethods(join(dir, 'methods.mjs')), { ping: { url: 'http://orders/ping' } })
  await t.rejects(loadMethods(join(dir, 'array.json')), /must hold an object of methods/)
  await t.rejects(loadMethods(join(dir, 'broken.json')), /METHODS_CONFIG/)
  await t.rejects(loadMethods(join(dir, 'missing.mjs')), /METHODS_CONFIG/)
})

t.test('the dedicated edge forwards the example\'s methods to the order service, signing the caller', async (t) => {
  const orders = Fastify({ logger: false })
  t.teardown(() => orders.close())
  await orders.register(notifyBackend, { callerSecret: CALLER_SECRET })
  // The order service's own app.notify would be a publisher; for RPC, an in-memory stand-in of its publish is enough.
  orders.decorate('notify', { streams: new Map(), publish: async () => ({ id: '1-0', online: true }), presence: async () => ({ users: {} }) } as never)
  await orders.register(orderRoutes, { stepMs: 60_000 })
  await orders.listen({ port: 0, host: '127.0.0.1' })
  const { config } = await loadEdgeConfig({ PORT: '0', CALLER_SECRET, LOG_LEVEL: 'silent' })
  const app = await buildEdge(config, STREAMS, false, rpcMethodsAt(urls(orders).http))
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const alice = await connectUser(t, { app, ...urls(app) }, 'alice')
  alice.send({ event: 'rpc', method: 'orders.place', id: 'p' })
  const placed = await alice.next((f) => f.id === 'p')
  t.equal(placed.event, 'result')
  t.same(placed.data.online, true)
  alice.send({ event: 'rpc', method: 'orders.list', id: 'l' })
  t.same((await alice.next((f) => f.id === 'l')).data, { orders: [{ orderId: placed.data.orderId, status: 'placed' }] }, 'the order service saw alice as the caller')
})
