import t from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import {
  MemoryHistoryStore, notify, notifyBus, notifySocketAuth, notifyStreams,
  type BusMessage, type HistoryBounds, type HistoryStore, type StreamDefinition
} from '../plugins/index.js'
import type { MessageTemplate } from '../plugins/message.js'
import { TestClock } from './abstract/history-store.js'
import { SECRET, build, connect, connectUser, publish, urls, type Client, type Frame } from './helpers.js'

const STREAMS: StreamDefinition[] = [
  { name: 'order', kind: 'private', history: { size: 200, ttl: 600 } },
  { name: 'small', kind: 'private', history: { size: 5, ttl: 600 } },
  { name: 'feed', kind: 'public', history: { size: 5000, ttl: 600 } },
  { name: 'plain', kind: 'public' }
]

type Edge = Awaited<ReturnType<typeof build>>

/** Takes the next `count` messages of `stream`, in arrival order. */
async function take (client: Client, count: number, stream?: string): Promise<Frame[]> {
  const taken: Frame[] = []
  while (taken.length < count) taken.push(await client.next((f) => f.event === 'message' && (stream === undefined || f.stream === stream)))
  return taken
}

/** Publishes numbered messages one after another; resolves with their ids. */
async function publishNumbered (edge: Edge, stream: string, user: string | null, from: number, count: number): Promise<string[]> {
  const ids: string[] = []
  for (let n = from; n < from + count; n++) {
    const result = await edge.app.notify.publish(user === null ? { stream, data: { n } } : { stream, user, data: { n } })
    ids.push((result as { id: string }).id)
  }
  return ids
}

/** Waits for a ping's answer: every frame sent before it has arrived. */
async function settle (client: Client): Promise<void> {
  await client.request({ event: 'ping' }, 'pong')
}

t.test('a client that reconnects with since receives exactly the 100 it missed, in order, then live ones', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const first = await connectUser(t, edge, 'alice')
  await first.subscribe('order')
  const sent = await publish(edge.http, { stream: 'order', user: 'alice', data: { n: 0 } })
  const [seen] = await take(first, 1)
  t.equal(seen.id, sent.body.id)
  await first.close()

  const missed: string[] = []
  for (let n = 1; n <= 100; n++) {
    const res = await publish(edge.http, { stream: 'order', user: 'alice', data: { n } })
    t.equal(res.status, 202)
    missed.push(res.body.id as string)
  }

  const again = await connectUser(t, edge, 'alice')
  const events: string[] = []
  again.socket.on('message', (data) => events.push(JSON.parse(data.toString()).event))
  const subscribed = await again.subscribe({ stream: 'order', since: seen.id })
  t.same(subscribed.streams, ['order'])
  t.same(subscribed.gaps, [], 'no gap')
  const replayed = await take(again, 100)
  t.same(replayed.map((m) => m.data.n), Array.from({ length: 100 }, (_, i) => i + 1))
  t.same(replayed.map((m) => m.id), missed, 'the ids the publishes answered')
  t.equal(events[0], 'subscribed', '`subscribed` comes before the replay')

  const live = await publish(edge.http, { stream: 'order', user: 'alice', data: { n: 101 } })
  const [next] = await take(again, 1)
  t.same([next.id, next.data.n], [live.body.id, 101])
  await settle(again)
  t.same(again.messages(), [], 'nothing twice')
})

t.test('publishing resolves once the message is in history, under the id it answers', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const { ids } = await edge.app.notify.publish({ stream: 'order', users: ['alice', 'bob'], data: { n: 1 } }) as { ids: string[] }
  const { store } = edge.app.notifyHistory
  const topic = (user: string): string => edge.app.notify.streams.get('order')!.topic(user)
  const bounds = STREAMS[0].history!
  t.same(await store.read(topic('alice'), ids[0], bounds, 10), [], 'alice\'s latest message')
  t.same(await store.read(topic('bob'), ids[1], bounds, 10), [], 'bob\'s latest message')
  t.equal(await store.read(topic('bob'), ids[0], bounds, 10), null, 'alice\'s id is foreign to bob\'s history')
})

t.test('a resume lists the stream in gaps and goes live', async (t) => {
  const clock = new TestClock()
  const edge = await build(t, { streams: STREAMS, history: { store: new MemoryHistoryStore({ now: clock.now }), closeStore: true } })
  const [trimmed] = await publishNumbered(edge, 'small', 'alice', 0, 1)
  await publishNumbered(edge, 'small', 'alice', 1, 10)
  const [bobs] = await publishNumbered(edge, 'order', 'bob', 0, 1)
  const [expired, latest] = await publishNumbered(edge, 'order', 'alice', 0, 2)
  clock.advance(601)

  const cases: Array<[string, { stream: string, since: string }]> = [
    ['trimmed by size', { stream: 'small', since: trimmed }],
    ['expired by age', { stream: 'order', since: expired }],
    ['an id from another user\'s history', { stream: 'order', since: bobs }],
    ['an id never issued', { stream: 'order', since: '1-0' }],
    ['a value that is no id', { stream: 'order', since: 'yesterday' }],
    ['a stream without history', { stream: 'plain', since: latest }]
  ]
  for (const [why, request] of cases) {
    const client = await connectUser(t, edge, 'alice')
    const subscribed = await client.subscribe(request)
    t.same([subscribed.streams, subscribed.gaps], [[request.stream], [request.stream]], why)
    const user = request.stream === 'plain' ? null : 'alice'
    const [live] = await publishNumbered(edge, request.stream, user, 1000, 1)
    const [message] = await take(client, 1)
    t.equal(message.id, live, `${why}: live delivery proceeds, with nothing replayed`)
    await client.close()
  }

  const upToDate = await connectUser(t, edge, 'alice')
  const [newest] = await publishNumbered(edge, 'order', 'alice', 2000, 1)
  clock.advance(601)
  t.same((await upToDate.subscribe({ stream: 'order', since: newest })).gaps, [], 'the latest id is remembered after it expired')
})

t.test('a replay over maxReplay is a gap, not a flood', async (t) => {
  const edge = await build(t, { streams: STREAMS, history: { maxReplay: 10 } })
  const ids = await publishNumbered(edge, 'order', 'alice', 0, 12)
  const over = await connectUser(t, edge, 'alice')
  t.same((await over.subscribe({ stream: 'order', since: ids[0] })).gaps, ['order'], '11 missed')
  await settle(over)
  t.same(over.messages(), [])
  const capped = await connectUser(t, edge, 'alice')
  t.same((await capped.subscribe({ stream: 'order', since: ids[1] })).gaps, [], '10 missed')
  t.same((await take(capped, 10)).map((m) => m.id), ids.slice(2))
})

t.test('one subscribe can resume, report a gap and start fresh at once', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const [since, after] = await publishNumbered(edge, 'order', 'alice', 0, 2)
  const client = await connectUser(t, edge, 'alice')
  const subscribed = await client.subscribe({ stream: 'order', since }, { stream: 'small', since: '1-0' }, 'plain', { stream: 'order', since: '1-0' })
  t.same([subscribed.streams, subscribed.gaps], [['order', 'small', 'plain'], ['small']])
  t.same((await take(client, 1)).map((m) => m.id), [after])
  const fresh = await connectUser(t, edge, 'alice')
  t.notOk('gaps' in (await fresh.subscribe('order', 'small')), 'no since, no gaps field')
})

t.test('since is ignored for a stream the connection already receives', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const [first] = await publishNumbered(edge, 'order', 'alice', 0, 3)
  const client = await connectUser(t, edge, 'alice')
  await client.subscribe('order')
  t.same((await client.subscribe({ stream: 'order', since: first })).gaps, [])
  await settle(client)
  t.same(client.messages(), [], 'nothing replayed')
})

/** A memory store whose reads wait until the test lets them go. */
class GatedStore implements HistoryStore {
  readonly appendPublishes = false
  readonly inner = new MemoryHistoryStore()
  readonly reading: Promise<void>
  readonly #gate: Promise<void>
  #started!: () => void
  #open!: () => void

  constructor (private readonly failRead = false) {
    this.reading = new Promise((resolve) => { this.#started = resolve })
    this.#gate = new Promise((resolve) => { this.#open = resolve })
  }

  open (): void {
    this.#open()
  }

  append (topic: string, template: MessageTemplate, bounds: HistoryBounds): Promise<BusMessage> {
    return this.inner.append(topic, template, bounds)
  }

  async read (topic: string, since: string, bounds: HistoryBounds, limit: number): Promise<BusMessage[] | null> {
    this.#started()
    await this.#gate
    if (this.failRead) throw new Error('history is down')
    return this.inner.read(topic, since, bounds, limit)
  }

  latest (topic: string): Promise<string> {
    return this.inner.latest(topic)
  }

  close (): Promise<void> {
    return this.inner.close()
  }
}

t.test('messages published while history is read arrive once, in order, after the replay', async (t) => {
  const store = new GatedStore()
  const edge = await build(t, { streams: STREAMS, history: { store, closeStore: true } })
  const ids = await publishNumbered(edge, 'order', 'alice', 0, 5)
  const client = await connectUser(t, edge, 'alice')
  const subscribed = client.subscribe({ stream: 'order', since: ids[1] })
  await store.reading
  // Live on the bus and in history both: held on the connection, then dropped as replayed.
  ids.push(...await publishNumbered(edge, 'order', 'alice', 5, 20))
  store.open()
  t.same((await subscribed).gaps, [])
  ids.push(...await publishNumbered(edge, 'order', 'alice', 25, 5))
  t.same((await take(client, 28)).map((m) => m.id), ids.slice(2))
  await settle(client)
  t.same(client.messages(), [])
})

t.test('a replayed message that still arrives live after the replay is dropped', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const ids = await publishNumbered(edge, 'order', 'alice', 0, 3)
  const client = await connectUser(t, edge, 'alice')
  await client.subscribe({ stream: 'order', since: ids[0] })
  t.same((await take(client, 2)).map((m) => m.id), ids.slice(1))
  // On Redis the read and the bus use different connections: a live copy can come in late.
  const topic = edge.app.notify.streams.get('order')!.topic('alice')
  const replayed = await edge.app.notifyHistory.store.read(topic, ids[0], STREAMS[0].history!, 10)
  for (const message of replayed!) await edge.app.notifyBus.publish(message)
  const [next] = await publishNumbered(edge, 'order', 'alice', 3, 1)
  await edge.app.notifyBus.publish(replayed![0])
  t.same((await take(client, 1)).map((m) => m.id), [next], 'late copies are dropped, before a newer message passes and after')
  await settle(client)
  t.same(client.messages(), [])
})

t.test('a history that cannot be read is reported as a gap', async (t) => {
  const store = new GatedStore(true)
  const edge = await build(t, { streams: STREAMS, history: { store, closeStore: true } })
  const [since] = await publishNumbered(edge, 'order', 'alice', 0, 1)
  const client = await connectUser(t, edge, 'alice')
  const subscribed = client.subscribe({ stream: 'order', since })
  await store.reading
  const [held] = await publishNumbered(edge, 'order', 'alice', 1, 1)
  store.open()
  t.same((await subscribed).gaps, ['order'])
  t.same((await take(client, 1)).map((m) => m.id), [held], 'what arrived live meanwhile is still delivered')
})

t.test('a connection that closes during a resume is released and sent nothing', async (t) => {
  const store = new GatedStore()
  const edge = await build(t, { streams: STREAMS, history: { store, closeStore: true } })
  const [since] = await publishNumbered(edge, 'order', 'alice', 0, 1)
  const client = await connectUser(t, edge, 'alice')
  client.send({ event: 'subscribe', streams: [{ stream: 'order', since }] })
  await store.reading
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  await client.close()
  await connection.closed
  store.open()
  await publishNumbered(edge, 'order', 'alice', 1, 1)
  t.equal(edge.app.notifyBus.topicCount(), 0, 'its topic is released')
})

t.test('resuming again and again while publishing in a tight loop loses nothing and repeats nothing', async (t) => {
  const edge = await build(t, { streams: STREAMS, history: { maxReplay: 5000 } })
  const total = 2000
  const publishing = (async () => {
    for (let n = 0; n < total; n++) {
      await edge.app.notify.publish({ stream: 'feed', data: { n } })
      if (n % 4 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  })()
  const received: number[] = []
  let since: string | undefined
  let resumes = 0
  while (received.length === 0 || received[received.length - 1] < total - 1) {
    const { client } = await connect(t, `${edge.ws}/public`)
    const subscribed = await client.subscribe(since === undefined ? 'feed' : { stream: 'feed', since })
    if (since !== undefined) {
      t.same(subscribed.gaps, [], `resume ${++resumes} has no gap`)
    }
    // Stay a while, then drop the connection mid-stream.
    const stay = received.length + 150
    while (received.length < stay && (received.length === 0 || received[received.length - 1] < total - 1)) {
      const [message] = await take(client, 1)
      received.push(message.data.n)
      since = message.id
    }
    await client.close()
  }
  await publishing
  t.ok(resumes >= 3, `resumed ${resumes} times`)
  const first = received[0]
  t.same(received, Array.from({ length: total - first }, (_, i) => first + i), 'every message once, in order')
})

t.test('rejects bad history options with coded errors', async (t) => {
  const bad: unknown[] = [null, 5, {}, { size: 10 }, { size: 0, ttl: 10 }, { size: 10, ttl: 1.5 }]
  for (const history of bad) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => {
      await app.register(notifyBus).register(notify, {
        streams: [{ name: 'order', kind: 'private', history } as unknown as StreamDefinition]
      }).ready()
    }, { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(history))
  }
  const noPlugin = Fastify()
  t.teardown(() => noPlugin.close())
  await t.rejects(async () => { await noPlugin.register(notifyBus).register(notify, { streams: STREAMS }).ready() },
    { code: 'FST_NOTIFY_INVALID_OPTION', message: /register the history plugin/ })
  for (const history of [{ maxReplay: 0 }, { store: {} as HistoryStore }]) {
    await t.rejects(build(t, { streams: STREAMS, history }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  }
})

t.test('without the history plugin every resume is a gap', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(notifyBus)
  await app.register(notify, { streams: [{ name: 'plain', kind: 'public' }] })
  await app.register(notifySocketAuth)
  await app.register(notifyStreams, { path: '/public', anonymous: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { client } = await connect(t, `${urls(app).ws}/public`)
  t.same((await client.subscribe({ stream: 'plain', since: '1-0' })).gaps, ['plain'])
})
