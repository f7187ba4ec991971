// deploy/haproxy.cfg in front of three dedicated edges on Redis (SPEC section 15): clients connect
// through it, an instance is drained and restarted with nothing lost, a capped instance gets no
// new sockets. Needs Debian's haproxy (.ci/run installs it).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildEdge } from '../bin/edge.js'
import { loadEdgeConfig } from '../bin/config.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, connect, publish, urls } from './helpers.js'
import { sdk, type Recorder } from './client-helpers.js'
import { freePort, sharedRedis, until } from './redis-server.js'

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((path) => existsSync(path))
type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function edge (t: Test, env: Record<string, string>, port = 0): Promise<{ app: FastifyInstance, port: number, readyRefusals: () => number, readyChecks: () => number }> {
  const { config } = await loadEdgeConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ...env })
  const app = await buildEdge(config, STREAMS, false)
  t.teardown(() => app.close())
  let refusals = 0
  let checks = 0
  app.addHook('onResponse', async (request, reply) => {
    if (request.url !== '/ready') return
    if (reply.statusCode === 503) refusals++
    else checks++
  })
  await app.listen({ port, host: '127.0.0.1' })
  return { app, port: Number(new URL(urls(app).http).port), readyRefusals: () => refusals, readyChecks: () => checks }
}

const wsConnections = (app: FastifyInstance): number => app.notifyStreams.get('/ws')!.connections.size

t.test('three edges behind HAProxy: connect through it, drain and restart one with nothing lost, a capped one gets no new sockets', { skip: HAPROXY === undefined ? 'haproxy is not installed (apt-get install haproxy)' : false }, async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const env = { REDIS_URL: url, TOPIC_PREFIX: prefix, LOG_LEVEL: 'silent' }
  const a = await edge(t, env)
  const b = await edge(t, env)
  const c = await edge(t, { ...env, MAX_CONNECTIONS: '1' })
  const lbPort = await freePort()
  const haproxy: ChildProcess = spawn(HAPROXY!, ['-db', '-f', 'deploy/haproxy.cfg'], {
    env: { ...process.env, LB_BIND: `127.0.0.1:${lbPort}`, EDGE_1: `127.0.0.1:${a.port}`, EDGE_2: `127.0.0.1:${b.port}`, EDGE_3: `127.0.0.1:${c.port}`, CHECK_INTER: '100ms' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  const exited = once(haproxy, 'exit')
  t.teardown(async () => { haproxy.kill('SIGTERM'); await exited })
  const lb = { app: b.app, http: `http://127.0.0.1:${lbPort}`, ws: `ws://127.0.0.1:${lbPort}` }
  await until('HAProxy answers', async () => (await fetch(`${lb.http}/ready`).catch(() => null))?.status === 200)

  // C at its cap: /ready says 503, and HAProxy (fall 1) takes it out after its next check.
  const held = (await connect(t, `ws://127.0.0.1:${c.port}/ws?token=${c.app.jwt.sign({ sub: 'holder' })}`)).client
  await until('HAProxy saw C not ready', () => c.readyRefusals() >= 1)

  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`)
  const clients = new Map<string, Recorder>()
  for (const user of users) {
    const { events } = sdk(t, lb, user)
    events.subscribe('order')
    await events.next('subscribed')
    clients.set(user, events)
  }
  t.equal(wsConnections(c.app), 1, 'the capped instance got no new socket')
  t.equal(wsConnections(a.app) + wsConnections(b.app), users.length, 'all through A and B')
  t.ok(wsConnections(a.app) > 0 && wsConnections(b.app) > 0, 'spread over both (leastconn, no stickiness)')

  const send = async (status: string): Promise<void> => {
    for (const user of users) {
      const res = await publish(`http://127.0.0.1:${b.port}`, { stream: 'order', user, data: { orderId: user, status } })
      t.equal(res.status, 202)
    }
  }
  const receive = async (status: string): Promise<void> => {
    for (const [user, events] of clients) {
      const message = await events.next('message', undefined, 10_000)
      t.same(message.data, { orderId: user, status }, `${user} got ${status}`)
    }
  }
  await send('placed')
  await receive('placed')

  // Drain A: its clients get 1001 and reconnect through HAProxy to B, resuming from history.
  const onA = wsConnections(a.app)
  await a.app.close()
  await send('paid')
  await receive('paid')
  t.equal(wsConnections(b.app), users.length, `A's ${onA} clients moved to B`)
  const again = await edge(t, env, a.port)
  // rise 2: two passing checks put it back in rotation.
  await until('HAProxy checked the restarted A twice', () => again.readyChecks() >= 3)
  await send('shipped')
  await receive('shipped')
  for (const events of clients.values()) {
    t.same(events.taken('message'), [], 'nothing twice')
    t.same(events.taken('gap'), [], 'no gap')
  }

  // New sockets land on the restarted instance (fewest connections), never on the capped one.
  for (let i = 0; i < 4; i++) {
    const { events } = sdk(t, lb, `late-${i}`)
    await events.next('connected')
  }
  await until('the restarted instance gets new sockets', () => wsConnections(again.app) > 0)
  t.equal(wsConnections(c.app), 1)
  t.equal((await held.request({ event: 'ping' }, 'pong')).event, 'pong', 'the capped instance\'s socket is unharmed')
})
