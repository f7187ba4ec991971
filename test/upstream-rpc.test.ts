import { once } from 'node:events'
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import {
  defineStreams, notifyBackend, notifyEdge, signCallerToken, verifyCallerToken, type NotifyUpstreamOptions
} from '../plugins/index.js'
import { METHODS, call, chatHook, orderRoutes, upstreamSuite, type Built } from './abstract/upstream-targets.js'
import { SECRET, connect, connectUser, countTcpWrites, urls, type Edge } from './helpers.js'

const CALLER_SECRET = 'a-caller-secret-of-at-least-32-characters'

async function edgeApp (t: Test, streams: ReturnType<typeof defineStreams>, upstream: NotifyUpstreamOptions, routes?: (app: FastifyInstance) => Promise<void>): Promise<Edge> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams, upstream })
  if (routes !== undefined) await app.register(routes)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

function built (t: Test, edge: Edge): Built {
  return {
    connect: (user) => connectUser(t, edge, user),
    anonymous: async () => (await connect(t, `${edge.ws}/public`)).client
  }
}

const limits = { rpcTimeout: 500, maxCallsInFlight: 2, hookTimeout: 500 }

/** A backend on its own port serving the routes and the hook, as a split-out order service would. */
async function backend (t: Test): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyBackend, { callerSecret: CALLER_SECRET })
  await app.register(orderRoutes)
  app.notifyBackend.publishHook('/hooks/chat', chatHook)
  app.notifyBackend.authorizeHook('/hooks/room', (principal, target) => principal.user === 'alice' && target.key === 'lobby')
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: urls(app).http }
}

function remote (url: string): NotifyUpstreamOptions['methods'] {
  return Object.fromEntries(Object.entries(METHODS).map(([name, m]) => [name, { ...m, url: `${url}${m.url}` }]))
}

t.test('embedded: served by the app\'s own routes, in process', async (t) => {
  upstreamSuite({
    test: (name, fn) => t.test(name, fn),
    builder: async (t) => built(t, await edgeApp(t, defineStreams([{ name: 'chat', kind: 'public', clientPublish: chatHook }]), { ...limits, methods: METHODS }, orderRoutes))
  })
})

t.test('split out: served by a backend over HTTP, with a signed caller token', async (t) => {
  upstreamSuite({
    test: (name, fn) => t.test(name, fn),
    builder: async (t) => {
      const { url } = await backend(t)
      const streams = defineStreams([{ name: 'chat', kind: 'public', clientPublish: `${url}/hooks/chat` }])
      return built(t, await edgeApp(t, streams, { ...limits, methods: remote(url), backend: { callerSecret: CALLER_SECRET } }))
    }
  })
})

t.test('a network request cannot claim a caller', async (t) => {
  const edge = await edgeApp(t, defineStreams([{ name: 'chat', kind: 'public' }]), { methods: METHODS }, orderRoutes)
  const alice = await connectUser(t, edge, 'alice')
  t.same((await call(alice, 'whoami')).data, { user: 'alice' })
  // The header the in-process call uses holds an id known only while that call runs.
  const res = await fetch(`${edge.http}/whoami`, { headers: { 'x-notify-rpc-call': 'guess.1' } })
  t.same(await res.json(), { user: null })
  const { url, app } = await backend(t)
  const forged = signCallerToken('another-secret-that-is-32-characters-long', { user: 'alice', expiresAt: null, claims: {} }, 30)
  t.equal((await fetch(`${url}/whoami`, { headers: { 'x-notify-caller': forged } })).status, 401, 'a token signed with another secret')
  const expired = signCallerToken(CALLER_SECRET, { user: 'alice', expiresAt: null, claims: {} }, 30, Date.now() - 60_000)
  t.equal((await fetch(`${url}/whoami`, { headers: { 'x-notify-caller': expired } })).status, 401, 'an expired token')
  t.same(await (await fetch(`${url}/whoami`)).json(), { user: null }, 'no token: no caller')
  const hook = await app.inject({ method: 'POST', url: '/hooks/chat', payload: { target: { stream: 'chat' }, data: {} } })
  t.equal(hook.statusCode, 401, 'a hook needs a caller')
  const good = signCallerToken(CALLER_SECRET, { user: 'bob', expiresAt: null, claims: {} }, 30)
  t.same(verifyCallerToken(CALLER_SECRET, good)?.user, 'bob')
  for (const bad of [good.slice(0, -2), `${good}x`, 'a.b.c', 'x'.repeat(3000), 5, `${good.split('.')[0]}.e30.${good.split('.')[2]}`]) {
    t.equal(verifyCallerToken(CALLER_SECRET, bad), null)
  }
  const authorize = await app.inject({ method: 'POST', url: '/hooks/room', headers: { 'x-notify-caller': signCallerToken(CALLER_SECRET, { user: 'alice', expiresAt: null, claims: {} }, 30) }, payload: { target: { stream: 'room', key: 'lobby' } } })
  t.same(authorize.json(), { allow: true })
})

/** A TCP server that answers every request with `respond(socket)`. */
async function rawServer (t: Test, respond: (socket: import('node:net').Socket) => void): Promise<string> {
  const sockets = new Set<import('node:net').Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.once('data', () => respond(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => {
    for (const socket of sockets) socket.destroy()
    server.close(() => resolve())
  }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('an in-process call that times out is answered TIMEOUT; its late answer is dropped', async (t) => {
  let release: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  let finished = false
  const edge = await edgeApp(t, defineStreams([{ name: 'chat', kind: 'public' }]), {
    rpcTimeout: 100, methods: { hang: { url: '/hang' }, whoami: { method: 'GET', url: '/whoami' } }
  }, async (app) => {
    app.post('/hang', async (request) => {
      t.equal(request.notifyPrincipal?.user, 'alice', 'the route saw its caller')
      await released
      finished = true
      return { late: true }
    })
    app.get('/whoami', async (request) => ({ user: request.notifyPrincipal?.user ?? null }))
  })
  const alice = await connectUser(t, edge, 'alice')
  t.equal((await call(alice, 'hang')).code, 'TIMEOUT')
  release!()
  t.same((await call(alice, 'whoami')).data, { user: 'alice' }, 'later calls are served')
  t.ok(finished, 'the route ran to its end')
  t.same(alice.frames.filter((f) => f.event === 'result' || f.event === 'error'), [], 'the late answer is dropped')
})

t.test('results of calls finishing together share the socket\'s writes, each to its own id', async (t) => {
  let open: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  let arrived = 0
  const edge = await edgeApp(t, defineStreams([{ name: 'chat', kind: 'public' }]), {
    methods: { wait: { url: '/wait' } }
  }, async (app) => {
    app.post('/wait', async (request) => {
      if (++arrived === 5) open()
      await gate
      return { n: (request.body as { n: number }).n }
    })
  })
  const alice = await connectUser(t, edge, 'alice')
  const writes = countTcpWrites(edge.app)
  const results = await Promise.all([1, 2, 3, 4, 5].map((n) => call(alice, 'wait', { n })))
  t.same(results.map((f) => [f.event, f.data.n]), [1, 2, 3, 4, 5].map((n) => ['result', n]))
  t.ok(writes() < 5, `5 results in ${writes()} writes`)
})

t.test('a dead, garbled or cut-off backend fails the call within the timeout and stalls nobody', async (t) => {
  const garbage = await rawServer(t, (socket) => socket.end('NOT HTTP AT ALL\r\n\r\n'))
  const cut = await rawServer(t, (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"half":'))
  const badJson = await rawServer(t, (socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{nope'))
  const silent = await rawServer(t, () => {})
  const dead = 'http://127.0.0.1:1'
  const { url } = await backend(t)
  const methods = {
    garbage: { url: `${garbage}/x` },
    cut: { url: `${cut}/x` },
    badJson: { url: `${badJson}/x` },
    silent: { url: `${silent}/x` },
    dead: { url: `${dead}/x` },
    whoami: { method: 'GET' as const, url: `${url}/whoami` }
  }
  const streams = defineStreams([
    { name: 'silent', kind: 'public', clientPublish: `${silent}/hook` },
    { name: 'dead', kind: 'public', clientPublish: `${dead}/hook` },
    { name: 'garbage', kind: 'public', clientPublish: `${garbage}/hook` },
    { name: 'badJson', kind: 'public', clientPublish: `${badJson}/hook` }
  ])
  const edge = await edgeApp(t, streams, { methods, rpcTimeout: 600, hookTimeout: 600, maxCallsInFlight: 8, backend: { callerSecret: CALLER_SECRET } })
  const alice = await connectUser(t, edge, 'alice')
  const started = Date.now()
  const calls = Promise.all(['garbage', 'cut', 'badJson', 'silent', 'dead'].map((m) => call(alice, m)))
  const bob = await connectUser(t, edge, 'bob')
  t.same((await call(bob, 'whoami')).data, { user: 'bob' }, 'another socket is served meanwhile')
  const answers = await calls
  t.same(answers.map((a) => [a.code, a.status]), [['RPC_FAILED', 502], ['RPC_FAILED', 502], ['RPC_FAILED', 502], ['TIMEOUT', undefined], ['RPC_FAILED', 502]])
  t.ok(Date.now() - started < 1500, 'all within the timeout')
  const publishes = await Promise.all(['silent', 'dead', 'garbage', 'badJson'].map(async (stream) => {
    const client = await connectUser(t, edge, `u-${stream}`)
    client.send({ event: 'publish', stream, data: {}, id: stream })
    return (await client.next((f) => f.id === stream)).code
  }))
  t.same(publishes, ['TIMEOUT', 'FORBIDDEN', 'FORBIDDEN', 'FORBIDDEN'])
})

t.test('options are checked at registration', async (t) => {
  const streams = defineStreams([{ name: 'chat', kind: 'public' }])
  const bad: Array<[string, NotifyUpstreamOptions | Record<string, unknown>]> = [
    ['a URL method without a secret', { methods: { m: { url: 'http://127.0.0.1:1/x' } } }],
    ['a short secret', { backend: { callerSecret: 'short' } }],
    ['a bad method name', { methods: { 'a b': { url: '/x' } } }],
    ['a bad HTTP method', { methods: { m: { method: 'TRACE', url: '/x' } } }],
    ['a bad url', { methods: { m: { url: 'x' } } }],
    ['a non-http url', { methods: { m: { url: 'ftp://x/y' } } }],
    ['a bad anonymous', { methods: { m: { url: '/x', anonymous: 'yes' } } }],
    ['methods not an object', { methods: [] }],
    ['a bad rate', { publishRate: 5 }],
    ['a bad rate value', { publishRate: { perSecond: 0 } }]
  ]
  for (const [what, upstream] of bad) {
    const app = Fastify({ logger: false })
    const err = await app.register(notifyEdge, { jwt: { secret: SECRET }, streams, upstream: upstream as NotifyUpstreamOptions }).ready().then(() => null, (e: { code?: string }) => e)
    t.equal(err?.code, 'FST_NOTIFY_INVALID_OPTION', what)
    await app.close()
  }
  for (const [what, stream] of [
    ['a private stream', { name: 'p', kind: 'private', clientPublish: true }],
    ['a bad policy', { name: 'p', kind: 'public', clientPublish: 'not a url' }],
    ['a URL hook without a secret', { name: 'p', kind: 'public', clientPublish: 'http://127.0.0.1:1/hook' }]
  ] as const) {
    const app = Fastify({ logger: false })
    const err = await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: [stream as never] }).ready().then(() => null, (e: { code?: string }) => e)
    t.equal(err?.code, 'FST_NOTIFY_INVALID_OPTION', what)
    await app.close()
  }
})
