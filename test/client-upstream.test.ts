import Fastify from 'fastify'
import t from 'tap'
import { defineStreams, notifyEdge } from '../plugins/index.js'
import { NotifyClientError } from '../client/index.js'
import { METHODS, orderRoutes } from './abstract/upstream-targets.js'
import { sdk, serverConnections } from './client-helpers.js'
import { SECRET, urls } from './helpers.js'

async function edge (t: Parameters<typeof sdk>[0]) {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const streams = defineStreams([
    { name: 'chat', kind: 'public', clientPublish: async (_p, _t, data) => (data as { text?: string }).text === 'no' ? { allow: false, reason: 'nope' } : true }
  ])
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams, upstream: { methods: METHODS, rpcTimeout: 500 } })
  await app.register(orderRoutes)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

t.test('publish() and rpc() resolve with the answer and reject with the server\'s code', async (t) => {
  const e = await edge(t)
  const { client, events } = sdk(t, e, 'alice')
  await t.rejects(client.publish('chat', { text: 'early' }), { code: 'NOTIFY_CLIENT_NOT_CONNECTED' })
  events.subscribe('chat')
  await events.next('connected')
  const published = await client.publish('chat', { text: 'hi' }, { idempotencyKey: 'k' })
  const message = await events.next('message')
  t.same([message.id, message.from, message.data], [published.id, 'alice', { text: 'hi' }])
  t.same(await client.publish('chat', { text: 'hi' }, { idempotencyKey: 'k' }), { id: published.id, replayed: true })
  const refused = await client.publish('chat', { text: 'no' }).catch((err: NotifyClientError) => err)
  t.ok(refused instanceof NotifyClientError)
  t.same([(refused as NotifyClientError).code, (refused as NotifyClientError).reason], ['FORBIDDEN', 'nope'])
  t.same(await client.rpc('orders.place', { item: 'tea' }), { orderId: 'alice-1' })
  const failed = await client.rpc('orders.cancel', { orderId: 'x' }).catch((err: NotifyClientError) => err) as NotifyClientError
  t.same([failed.code, failed.status, failed.message], ['RPC_FAILED', 404, 'no order x'])
  await t.rejects(client.rpc('slow'), { code: 'TIMEOUT' })
  await t.rejects(client.rpc('slow', undefined, { timeout: 50 }), { code: 'NOTIFY_CLIENT_TIMEOUT' })
  await t.rejects(client.rpc('whoami', undefined, { timeout: -1 }), { code: 'NOTIFY_CLIENT_INVALID_ARGUMENT' })
  t.same(events.taken('error'), [], 'answered errors are not emitted as error events')
})

t.test('a call in flight when the connection drops rejects, and is not sent again', async (t) => {
  const e = await edge(t)
  const { client, events } = sdk(t, e, 'alice')
  await events.next('connected')
  const pending = client.rpc('slow')
  for (const connection of serverConnections(e.app)) connection.socket.terminate()
  await t.rejects(pending, { code: 'NOTIFY_CLIENT_DISCONNECTED' })
  await events.next('connected', () => true, 5000)
  t.same(await client.rpc('whoami'), { user: 'alice' })
})
