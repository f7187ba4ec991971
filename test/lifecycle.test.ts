import Fastify from 'fastify'
import mqemitter, { type MQEmitter } from 'mqemitter'
import t from 'tap'
import WebSocket from 'ws'
import { MemoryTicketStore, notifyEdge, type TicketRecord, type TicketStore } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { SECRET, build, connect, connectUser, countingEmitter, handshake, ticket, token, urls, type Client } from './helpers.js'

const isClosed = (emitter: MQEmitter): boolean => (emitter as MQEmitter & { closed: boolean }).closed

t.test('app.close() with sockets open closes each with 1001, promptly, and releases everything', async (t) => {
  const counted = countingEmitter()
  const edge = await build(t, { bus: { emitter: counted.emitter, closeEmitter: true } })
  const clients: Client[] = []
  for (const user of ['alice', 'alice', 'bob']) {
    const client = await connectUser(t, edge, user)
    await client.subscribe('order', 'promotional')
    clients.push(client)
  }
  for (let i = 0; i < 2; i++) {
    const { client } = await connect(t, `${edge.ws}/public`)
    await client.subscribe('promotional', 'system')
    clients.push(client)
  }
  t.equal(edge.app.notifyBus.topicCount(), 4, 'alice/order, bob/order, promotional, system')
  t.equal(counted.added(), 5, 'one emitter listener per topic, not per socket or per route (and the control topic)')

  const started = Date.now()
  await edge.app.close()
  const elapsed = Date.now() - started
  t.ok(elapsed < 1000, `closed in ${elapsed} ms`)

  t.same(await Promise.all(clients.map((c) => c.closed)), clients.map(() => 1001), 'every client saw 1001')
  t.equal(edge.app.notifyBus.topicCount(), 0, 'no bus topic left')
  t.equal(counted.removed(), counted.added(), 'every emitter listener removed')
  for (const [path, route] of edge.app.notifyStreams) {
    t.equal(route.connections.size, 0, `${path}: no connection left`)
    t.equal(route.topicCount(), 0, `${path}: no fan-out topic left`)
  }
  t.equal(isClosed(counted.emitter), true, 'the emitter was closed')
})

t.test('the default in-process emitter is closed with the app', async (t) => {
  const edge = await build(t)
  await edge.app.notifyBus.publish({ topic: 'notify/p/system', id: '1-0', frame: '{}' })
  await edge.app.close()
  await t.rejects(edge.app.notifyBus.publish({ topic: 'notify/p/system', id: '1-1', frame: '{}' }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' })
})

t.test('an emitter the app was given is left open unless closeEmitter says otherwise', async (t) => {
  const emitter = mqemitter()
  t.teardown(() => new Promise<void>((resolve) => emitter.close(() => resolve())))
  const edge = await build(t, { bus: { emitter } })
  await edge.app.close()
  t.equal(isClosed(emitter), false)
})

t.test('a socket that does not answer the close is terminated after drainTimeout', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', drainTimeout: 200 }] })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const raw = (alice.socket as WebSocket & { _socket: import('node:net').Socket })._socket
  raw.pause() // the client stops reading, so it never sees nor answers the 1001
  const started = Date.now()
  await edge.app.close()
  const elapsed = Date.now() - started
  t.ok(elapsed >= 190 && elapsed < 1500, `closed in ${elapsed} ms`)
  t.equal(edge.app.notifyStreams.get('/ws')!.connections.size, 0)
  t.equal(edge.app.notifyBus.topicCount(), 0)
  raw.resume()
  t.type(await alice.closed, 'number', 'the client learns the connection is gone')
})

t.test('a handshake still being authenticated when close begins gets no socket', async (t) => {
  let redeemStarted!: () => void
  const started = new Promise<void>((resolve) => { redeemStarted = resolve })
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  const memory = new MemoryTicketStore()
  const slow: TicketStore = {
    issue: (ticketId, record, ttl) => memory.issue(ticketId, record, ttl),
    async redeem (ticketId): Promise<TicketRecord | null> {
      redeemStarted()
      await released
      return memory.redeem(ticketId)
    }
  }
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, tickets: { store: slow } })
  // Runs after the plugins' own preClose hooks: the drain is over when the handshake goes on.
  app.addHook('preClose', async () => release())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const edge = { app, ...urls(app) }

  const issued = await ticket(edge.http, token(app, 'alice'))
  const pending = handshake(`${edge.ws}/ws?ticket=${issued}`)
  await started
  const closing = app.close()
  const result = await pending
  t.equal(result.status, 503, 'refused: the server is closing')
  await closing
  t.equal(app.notifyStreams.get('/ws')!.connections.size, 0)
})

t.test('closing a connection releases its subscriptions and its expiry timer', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order', 'promotional')
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  await alice.close()
  await connection.closed
  t.equal(edge.app.notifyBus.topicCount(), 0)
  t.equal(edge.app.notifyStreams.get('/ws')!.connections.size, 0)
})
