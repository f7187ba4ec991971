import t, { type Test } from 'tap'
import mqemitter from 'mqemitter'
import { compareMessageIds, type StreamDefinition } from '../plugins/index.js'
import { build, connect, connectUser, publish, type Client, type Edge, type Frame } from './helpers.js'
import { redisServer, until } from './redis-server.js'

const STREAMS: StreamDefinition[] = [
  { name: 'order', kind: 'private', history: { size: 200, ttl: 600 } },
  { name: 'feed', kind: 'public', history: { size: 5000, ttl: 600 } },
  { name: 'room', kind: 'channel', openAccess: true, history: { size: 100, ttl: 600 } }
]

async function take (client: Client, count: number): Promise<Frame[]> {
  const taken: Frame[] = []
  while (taken.length < count) taken.push(await client.next((f) => f.event === 'message'))
  return taken
}

function increasing (ids: string[]): boolean {
  return ids.every((id, i) => i === 0 || compareMessageIds(ids[i - 1], id) < 0)
}

/** Two edges on one private Redis. */
async function pair (t: Test, history = {}): Promise<[Edge, Edge]> {
  const server = await redisServer(t)
  const opts = { streams: STREAMS, redis: server.url, history }
  return Promise.all([build(t, opts), build(t, opts)])
}

t.test('a client moved from A to B resumes there with since: exactly the 100 it missed, in order, then live ones', async (t) => {
  const [a, b] = await pair(t)
  const onA = await connectUser(t, a, 'alice')
  await onA.subscribe('order')
  const first = await publish(b.http, { stream: 'order', user: 'alice', data: { n: 0 } })
  const [seen] = await take(onA, 1)
  t.equal(seen.id, first.body.id)
  await onA.close()

  const missed: string[] = []
  for (let n = 1; n <= 100; n++) {
    const res = await publish(n % 2 === 0 ? a.http : b.http, { stream: 'order', user: 'alice', data: { n } })
    t.equal(res.status, 202)
    missed.push(res.body.id as string)
  }
  t.ok(increasing(missed), 'ids from both instances increase')

  const onB = await connectUser(t, b, 'alice')
  t.same((await onB.subscribe({ stream: 'order', since: seen.id })).gaps, [])
  const replayed = await take(onB, 100)
  t.same(replayed.map((m) => m.data.n), Array.from({ length: 100 }, (_, i) => i + 1))
  t.same(replayed.map((m) => m.id), missed)
  const live = await publish(a.http, { stream: 'order', user: 'alice', data: { n: 101 } })
  t.same((await take(onB, 1)).map((m) => m.id), [live.body.id])
  await onB.request({ event: 'ping' }, 'pong')
  t.same(onB.messages(), [], 'nothing twice')

  const foreign = await connectUser(t, b, 'alice')
  t.same((await foreign.subscribe({ stream: 'order', since: '1-0' })).gaps, ['order'], 'an id this history never had is a gap')
})

t.test('two instances publishing to one topic at once: every instance sees the ids in history order', async (t) => {
  const [a, b] = await pair(t)
  const clients = await Promise.all([a, b].map(async (edge) => (await connect(t, `${edge.ws}/public`)).client))
  for (const client of clients) await client.subscribe('feed')
  const answered: string[] = []
  await Promise.all([a, b].flatMap((edge) => Array.from({ length: 10 }, async (_, lane) => {
    for (let n = 0; n < 30; n++) {
      const { id } = await edge.app.notify.publish({ stream: 'feed', data: { lane, n } }) as { id: string }
      answered.push(id)
    }
  })))
  for (const client of clients) {
    const ids = (await take(client, 600)).map((m) => m.id)
    t.ok(increasing(ids), 'in increasing id order')
    t.same([...ids].sort(compareMessageIds), [...answered].sort(compareMessageIds), 'each message once')
  }
})

t.test('hopping between instances while both publish in a tight loop loses nothing and repeats nothing', async (t) => {
  const [a, b] = await pair(t, { maxReplay: 5000 })
  const total = 1500
  let next = 0
  const publishing = Promise.all([a, b].map(async (edge) => {
    while (next < total) {
      const n = next++
      await edge.app.notify.publish({ stream: 'feed', data: { n } })
    }
  }))
  const received: Frame[] = []
  let since: string | undefined
  let hops = 0
  while (received.length === 0 || received.length < total - received[0].data.n) {
    const edge = hops % 2 === 0 ? a : b
    const { client } = await connect(t, `${edge.ws}/public`)
    const subscribed = await client.subscribe(since === undefined ? 'feed' : { stream: 'feed', since })
    if (since !== undefined) t.same(subscribed.gaps, [], `hop ${hops} has no gap`)
    hops++
    const stay = received.length + 200
    while (received.length < stay && (received.length === 0 || received.length < total - received[0].data.n)) {
      const [message] = await take(client, 1)
      received.push(message)
      since = message.id
    }
    await client.close()
  }
  await publishing
  t.ok(hops >= 3, `hopped ${hops} times`)
  const ids = received.map((m) => m.id)
  t.ok(increasing(ids), 'in order, none twice')
  t.equal(new Set(received.map((m) => m.data.n)).size, received.length)
})

t.test('a publish to a stream with history answers 503 while Redis is down, and works again after', async (t) => {
  const server = await redisServer(t)
  const edge = await build(t, { streams: STREAMS, redis: server.url })
  const ok = await publish(edge.http, { stream: 'feed', data: { n: 1 } })
  t.equal(ok.status, 202)
  await server.stop()
  const started = Date.now()
  const down = await publish(edge.http, { stream: 'feed', data: { n: 2 } })
  t.same([down.status, down.body.code], [503, 'FST_NOTIFY_BUS_UNAVAILABLE'])
  t.ok(Date.now() - started < 1500, 'within about a second')
  await server.start()
  await until('a publish to succeed again', async () => (await publish(edge.http, { stream: 'feed', data: { n: 3 } })).status === 202, 10_000)
  t.pass('publishing again once Redis is back')
})

t.test('with redis and an emitter of its own, the store leaves publishing to the bus', async (t) => {
  const server = await redisServer(t)
  const edge = await build(t, { streams: STREAMS, redis: server.url, bus: { emitter: mqemitter(), closeEmitter: true } })
  t.equal(edge.app.notifyHistory.store.appendPublishes, false)
  const { client } = await connect(t, `${edge.ws}/public`)
  await client.subscribe('feed')
  const { id } = await edge.app.notify.publish({ stream: 'feed', data: { n: 1 } }) as { id: string }
  t.same((await take(client, 1)).map((m) => m.id), [id], 'appended to Redis, delivered through the given emitter')
  const [later] = await edge.app.notify.publish({ stream: 'feed', data: { n: 2 } }).then((r) => [(r as { id: string }).id])
  const resumed = (await connect(t, `${edge.ws}/public`)).client
  t.same((await resumed.subscribe({ stream: 'feed', since: id })).gaps, [])
  t.same((await take(resumed, 1)).map((m) => m.id), [later], 'and resumable')
})

t.test('one subscribe resuming 50 channel keys on another instance: each key exactly what it missed, in order; a bad since is a gap', async (t) => {
  const [a, b] = await pair(t)
  const keys = Array.from({ length: 50 }, (_, i) => `room:k${i}`)
  const onA = await connectUser(t, a, 'alice')
  const { positions } = await onA.subscribe(...keys)
  t.equal(Object.keys(positions).length, 50, 'a position for every key')
  await onA.close()

  // Key i misses i % 4 messages (0 to 3): 73 in all.
  const missed = new Map<string, string[]>()
  for (const [i, name] of keys.entries()) {
    const ids: string[] = []
    for (let n = 0; n < i % 4; n++) ids.push(((await b.app.notify.publish({ stream: 'room', key: name.slice(5), data: { n } })) as { id: string }).id)
    missed.set(name, ids)
  }
  const onB = await connectUser(t, b, 'alice')
  const requests = keys.map((name) => ({ stream: name, since: name === 'room:k7' ? 'not-an-id' : positions[name] }))
  const subscribed = await onB.subscribe(...requests)
  t.equal(subscribed.streams.length, 50)
  t.same(subscribed.gaps, ['room:k7'], 'only the key resumed from no message id is a gap')
  const expected = [...missed].flatMap(([name, ids]) => name === 'room:k7' ? [] : ids.map((id) => ({ stream: name, id })))
  t.equal(expected.length, 73 - 3, 'every other key replays what it missed')
  const replayed = (await take(onB, expected.length)).map((m) => ({ stream: m.stream, id: m.id }))
  // Keys replay one after another, each in order.
  t.same(replayed, expected)
  const live = await a.app.notify.publish({ stream: 'room', key: 'k7', data: { n: 9 } }) as { id: string }
  t.equal((await take(onB, 1))[0].id, live.id, 'then live messages, on the gapped key too')
})
