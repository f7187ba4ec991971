import t from 'tap'
import { Redis } from 'ioredis'
import { privateTopic } from '../plugins/topics.js'
import { API_KEY, SECRET, build, connect, connectUser, handshakeStatus, publish, ticket, token, type Client } from './helpers.js'
import { exampleProcess } from './example-process.js'
import { redisServer } from './redis-server.js'

// Three instances on one Redis of the test's own: A and B in this process, C the example app
// running as a separate OS process with REDIS_URL.

t.test('three instances sharing one Redis act as one edge', async (t) => {
  const server = await redisServer(t)
  const [a, b, c] = await Promise.all([
    build(t, { redis: server.url }),
    build(t, { redis: server.url }),
    exampleProcess(t, { REDIS_URL: server.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY })
  ])
  const jwt = (user: string): string => token(a.app, user)
  const redis = new Redis(server.url)
  t.teardown(() => redis.disconnect())

  /** Publishes a marker through `via` and waits for it on each socket: every earlier message on that topic is in by then. */
  async function settle (via: string, body: Record<string, unknown>, sockets: Client[]): Promise<void> {
    const marker = await publish(via, { ...body, data: { orderId: 'marker', status: 'marker' } })
    if (marker.status !== 202) throw new Error(`marker: ${marker.status} ${JSON.stringify(marker.body)}`)
    for (const socket of sockets) await socket.next((f) => f.event === 'message' && f.id === marker.body.id)
  }

  t.test('one public publish reaches each of U1\'s three connections exactly once', async (t) => {
    const u1 = [await connectUser(t, a, 'U1'), await connectUser(t, a, 'U1'), await connectUser(t, b, 'U1')]
    for (const socket of u1) await socket.subscribe('promotional')
    const res = await publish(c.http, { stream: 'promotional', data: { text: '10% off' } })
    t.equal(res.status, 202, 'published through C, the separate process')
    await settle(a.http, { stream: 'promotional' }, u1)
    for (const socket of u1) {
      t.same(socket.messages('promotional').map((m) => [m.id, m.data]), [[res.body.id, { text: '10% off' }]])
    }
  })

  t.test("a private publish through A's POST /notifications reaches only U2's connection on B, once", async (t) => {
    const u2 = await connectUser(t, b, 'U2')
    await u2.subscribe('order')
    const others = [await connectUser(t, a, 'U1'), await connectUser(t, b, 'U1'), (await connect(t, `${c.ws}/ws?ticket=${await ticket(c.http, jwt('U1'))}`)).client]
    for (const socket of others) await socket.subscribe('order', 'promotional')
    t.equal((await redis.pubsub('NUMSUB', privateTopic('notify', 'order', 'U2')))[1], 1, "one instance holds U2's topic")

    const res = await publish(a.http, { stream: 'order', user: 'U2', data: { orderId: 'o-1', status: 'placed' } })
    t.equal(res.status, 202)
    await settle(a.http, { stream: 'order', user: 'U2' }, [u2])
    t.same(u2.messages('order').map((m) => [m.id, m.data]), [[res.body.id, { orderId: 'o-1', status: 'placed' }]])
    await settle(b.http, { stream: 'promotional' }, others)
    for (const socket of others) t.same(socket.messages('order'), [], 'nothing for U1')
  })

  t.test('a ticket issued on A is redeemed on B, and replaying it on C answers 401', async (t) => {
    const one = await ticket(a.http, jwt('U3'))
    const { welcome } = await connect(t, `${b.ws}/ws?ticket=${one}`)
    t.equal(welcome.user, 'U3')
    t.equal(await handshakeStatus(`${c.ws}/ws?ticket=${one}`), 401)
  })

  t.test('of twenty concurrent handshakes with one ticket across the instances, exactly one succeeds', async (t) => {
    const one = await ticket(c.http, jwt('U4'))
    const instances = [a.ws, b.ws, c.ws]
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => handshakeStatus(`${instances[i % 3]}/ws?ticket=${one}`)))
    t.equal(statuses.filter((s) => s === 101).length, 1)
    t.equal(statuses.filter((s) => s === 401).length, 19)
  })

  t.test('the separate process shuts down cleanly', async (t) => {
    t.equal(await c.stop(), 0)
  })
})
