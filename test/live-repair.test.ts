// No silent loss on an open socket (SPEC sections 4 and 6): two example-app processes on a
// private Redis whose pub/sub connections are dropped under them, as a network blip, a Redis
// restart or a failover would.

import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { exampleProcess, login, type ExampleProcess } from './example-process.js'
import { API_KEY, SECRET, build, connect, connectUser, publish, ticket, type Client, type Frame } from './helpers.js'
import { redisServer, until } from './redis-server.js'
import { STREAMS } from '../example-app/app.js'

/** Drops every pub/sub connection of the private Redis (both instances' subscribers). */
async function killPubsub (redis: Redis): Promise<number> {
  return Number(await redis.client('KILL', 'TYPE', 'pubsub'))
}

async function userOn (t: Test, edge: ExampleProcess, user: string): Promise<Client> {
  const jwt = await login(edge.http, user)
  return (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, jwt)}`)).client
}

/** Takes `count` message frames of `stream` in arrival order, waiting for each. */
async function take (client: Client, stream: string, count: number, timeout = 10_000): Promise<Frame[]> {
  const taken: Frame[] = []
  while (taken.length < count) taken.push(await client.next((f) => f.event === 'message' && f.stream === stream, timeout))
  return taken
}

/** A ping round trip: every frame the server wrote before its pong has arrived. */
async function settle (client: Client): Promise<void> {
  await client.request({ event: 'ping' }, 'pong')
}

function gaps (client: Client): Frame[] {
  return client.frames.filter((f) => f.event === 'gap')
}

async function order (http: string, user: string, n: number): Promise<string> {
  const res = await publish(http, { stream: 'order', user, data: { orderId: `o${n}`, status: 'placed', n } })
  if (res.status !== 202) throw new Error(`publish: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.id as string
}

/** Messages an instance delivered from history after losing them on the bus, from its /metrics. */
async function repairedOn (edge: ExampleProcess): Promise<number> {
  const metrics = await (await fetch(`${edge.http}/metrics`)).text()
  return Number(/notify_edge_messages_repaired_total\{route="\/ws"\} (\d+)/.exec(metrics)?.[1])
}

t.test('two example-app processes on one Redis', async (t) => {
  const server = await redisServer(t)
  const env = { REDIS_URL: server.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])
  const admin = new Redis(server.url)
  // The last test restarts Redis under it: its reconnect errors are expected.
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())

  t.test('600 messages at about 200/s through two pub/sub drops: all arrive, in order, once, on the same socket', async (t) => {
    const alice = await userOn(t, b, 'alice')
    await alice.subscribe('order')
    const ids: string[] = []
    let kills = 0
    for (let n = 0; n < 600; n++) {
      if (n === 200 || n === 400) kills += await killPubsub(admin)
      ids.push(await order(a.http, 'alice', n))
      await sleep(5)
    }
    // Each instance's bus subscriber holds its control topic (SPEC section 15); B's holds alice's too.
    t.equal(kills, 4, "each drop took both instances' subscribers, B's with alice's topic on it")
    const received = await take(alice, 'order', 600)
    t.same(received.map((m) => m.id), ids, '600/600, in publish order')
    t.same(received.map((m) => m.data.n), ids.map((_, n) => n))
    await settle(alice)
    t.same(alice.messages(), [], 'none twice')
    t.same(gaps(alice), [], 'nothing announced lost')
    t.equal(alice.closeCode, null, 'no reconnect')
    const repaired = await repairedOn(b)
    t.ok(repaired > 0, `the drops did lose live messages, which B took from history (${repaired})`)
  })

  t.test('a quiet topic during a blip: what was published meanwhile arrives, and no spurious gap', async (t) => {
    const carol = await userOn(t, b, 'carol')
    t.same((await carol.subscribe('order', 'reward', 'promotional')).streams, ['order', 'reward', 'promotional'])
    const before = await order(a.http, 'carol', 0)
    t.equal((await take(carol, 'order', 1))[0].id, before)
    const repairedBefore = await repairedOn(b)
    // B frozen while its subscriber is dropped: what A publishes now cannot reach B live.
    process.kill(b.pid, 'SIGSTOP')
    let stopped = true
    t.teardown(() => { if (stopped) process.kill(b.pid, 'SIGCONT') })
    await killPubsub(admin)
    const during = await order(a.http, 'carol', 1)
    const reward = await publish(a.http, { stream: 'reward', user: 'carol', data: { first: true } })
    process.kill(b.pid, 'SIGCONT')
    stopped = false
    t.equal((await take(carol, 'order', 1))[0].id, during, 'the order published during the blip, from history')
    t.equal((await take(carol, 'reward', 1))[0].id, reward.body.id, 'and the first message of a stream that had none before')
    const after = await order(a.http, 'carol', 2)
    t.equal((await take(carol, 'order', 1))[0].id, after)
    await settle(carol)
    t.same(carol.messages(), [], 'nothing twice')
    t.same(gaps(carol), [], 'no gap: history filled the hole, and the quiet public stream lost nothing')
    t.equal(await repairedOn(b) - repairedBefore, 2, 'B took both from history')
  })

  t.test('a stream without history gets a gap after a pub/sub drop; streams with history do not', async (t) => {
    const streams = [...STREAMS, { name: 'ticker', kind: 'public' as const }]
    const edge = await build(t, { redis: server.url, streams })
    const dave = await connectUser(t, edge, 'dave')
    await dave.subscribe('ticker', 'order')
    await killPubsub(admin)
    t.same((await dave.event('gap', 10_000)).streams, ['ticker'])
    await until('the bus to be back', () => edge.app.notifyBus.health().healthy)
    const tick = await publish(edge.http, { stream: 'ticker', data: { price: 1 } })
    t.equal((await take(dave, 'ticker', 1))[0].id, tick.body.id, 'live again on the same socket')
    await settle(dave)
    t.same(gaps(dave), [], 'one gap, for the stream without history only')
    t.equal(edge.app.notifyStreams.get('/ws')!.stats.gaps, 1)
  })

  t.test('a Redis restart without persistence gives a gap, then delivery goes on', async (t) => {
    const erin = await userOn(t, b, 'erin')
    await erin.subscribe('order')
    const first = await order(a.http, 'erin', 0)
    t.equal((await take(erin, 'order', 1))[0].id, first)
    await server.stop()
    await server.start()
    t.same((await erin.event('gap', 15_000)).streams, ['order'], 'history forgot what it held: refetch')
    let next: string | null = null
    await until('A to publish again', async () => {
      const res = await publish(a.http, { stream: 'order', user: 'erin', data: { orderId: 'o1', status: 'paid' } })
      if (res.status === 202) next = res.body.id as string
      return next !== null
    }, 15_000)
    t.equal((await take(erin, 'order', 1))[0].id, next)
    t.equal(erin.closeCode, null, 'no reconnect')
  })
})

t.test('the in-process bus never reports a gap', async (t) => {
  const streams = [...STREAMS, { name: 'ticker', kind: 'public' as const }]
  const edge = await build(t, { streams })
  const frank = await connectUser(t, edge, 'frank')
  await frank.subscribe('order', 'ticker')
  const published = await Promise.all(Array.from({ length: 500 }, async (_, n) => [
    (await edge.app.notify.publish({ stream: 'order', user: 'frank', data: { orderId: `o${n}`, status: 'placed' } }) as { id: string }).id,
    (await edge.app.notify.publish({ stream: 'ticker', data: { n } }) as { id: string }).id
  ]))
  const orders = await take(frank, 'order', 500)
  t.same(orders.map((m) => m.id), published.map(([id]) => id), 'in order')
  t.equal((await take(frank, 'ticker', 500)).length, 500)
  await settle(frank)
  t.same(gaps(frank), [])
  t.equal(edge.app.notifyStreams.get('/ws')!.stats.gaps, 0)
  t.equal(edge.app.notifyStreams.get('/ws')!.stats.repaired, 0)
})
