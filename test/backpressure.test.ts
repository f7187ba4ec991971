import { once } from 'node:events'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import type { NotifyStreamsRoute, StreamDefinition } from '../plugins/index.js'
import { build } from './helpers.js'

const MiB = 1024 * 1024
const TEXT = 'x'.repeat(1000)

/** A /public subscriber of `promotional` that counts messages and checks they come in order. */
class Counter {
  received = 0
  outOfOrder = 0
  gaps = 0
  connectionId = ''
  readonly closed: Promise<number>
  readonly subscribed: Promise<void>
  #target = Infinity
  #reached: () => void = () => {}

  constructor (readonly socket: WebSocket) {
    let subscribed: () => void
    this.subscribed = new Promise((resolve) => { subscribed = resolve })
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString())
      if (frame.event === 'welcome') this.connectionId = frame.connection
      if (frame.event === 'subscribed') subscribed()
      if (frame.event === 'gap') this.gaps++
      if (frame.event !== 'message') return
      if (frame.data.i !== this.received) this.outOfOrder++
      if (++this.received >= this.#target) this.#reached()
    })
    this.closed = new Promise((resolve) => socket.once('close', resolve))
  }

  static async open (t: { teardown: (fn: () => unknown) => void }, url: string): Promise<Counter> {
    const counter = new Counter(new WebSocket(url))
    t.teardown(() => counter.socket.terminate())
    await once(counter.socket, 'open')
    counter.socket.send(JSON.stringify({ event: 'subscribe', streams: ['promotional'] }))
    await counter.subscribed
    return counter
  }

  /** Resolves once `n` messages have arrived. */
  until (n: number): Promise<void> {
    if (this.received >= n) return Promise.resolve()
    this.#target = n
    return new Promise((resolve) => { this.#reached = resolve })
  }
}

/** Publishes `count` messages, keeping the reading clients no more than `window` behind. */
async function flood (app: FastifyInstance, count: number, readers: Counter[], onEach: () => void, window = 2000): Promise<void> {
  for (let i = 0; i < count; i++) {
    await app.notify.publish({ stream: 'promotional', data: { i, text: TEXT } })
    onEach()
    if (i % 500 === 499) await Promise.all(readers.map((r) => r.until(i + 1 - window)))
  }
  await Promise.all(readers.map((r) => r.until(count)))
}

/** A ping round trip: every frame written before the pong has arrived. */
function pong (counter: Counter): Promise<unknown> {
  counter.socket.send(JSON.stringify({ event: 'ping', id: 'after' }))
  return new Promise((resolve) => counter.socket.on('message', (data) => {
    const frame = JSON.parse(data.toString())
    if (frame.event === 'pong') resolve(frame)
  }))
}

t.test('a client that stops reading is closed with 1013 while the others receive everything', async (t) => {
  const edge = await build(t)
  const route = edge.app.notifyStreams.get('/public')!
  const readers = [await Counter.open(t, `${edge.ws}/public`), await Counter.open(t, `${edge.ws}/public`)]
  const slow = await Counter.open(t, `${edge.ws}/public`)
  const server = [...route.connections].find((c) => c.id === slow.connectionId)!
  ;(slow.socket as unknown as { _socket: { pause (): void, resume (): void } })._socket.pause()

  const rssBefore = process.memoryUsage().rss
  let maxBuffered = 0
  await flood(edge.app, 50_000, readers, () => { maxBuffered = Math.max(maxBuffered, server.socket.bufferedAmount) })
  const rssGrowth = process.memoryUsage().rss - rssBefore

  for (const reader of readers) {
    t.equal(reader.received, 50_000, 'a reading client receives every message')
    t.equal(reader.outOfOrder, 0, 'in order')
  }
  t.ok(maxBuffered <= MiB + 2048, `the slow socket never buffered much over 1 MiB (max ${maxBuffered} bytes)`)
  t.ok(slow.received < 50_000)
  t.equal(route.stats.slowConsumerCloses, 1)
  t.ok(route.stats.dropped > 0)
  t.comment(`slow socket max buffered ${maxBuffered} B, rss growth ${(rssGrowth / MiB).toFixed(1)} MiB, dropped ${route.stats.dropped}`)

  ;(slow.socket as unknown as { _socket: { resume (): void } })._socket.resume()
  t.equal(await slow.closed, 1013, 'the slow client sees 1013 once it reads again')
  t.equal(slow.outOfOrder, 0, 'what it got before the close was in order')
})

/** A `drop` route: a reader and a slow socket that stops reading while 20,000 messages go out. */
async function dropFlood (t: Test, stream: StreamDefinition, maxReplay?: number): Promise<{ route: NotifyStreamsRoute, reader: Counter, slow: Counter }> {
  const edge = await build(t, {
    streams: [stream],
    history: maxReplay === undefined ? undefined : { maxReplay },
    routes: [{ path: '/public', anonymous: true, slowConsumer: 'drop', maxBufferedBytes: 64 * 1024 }]
  })
  const route = edge.app.notifyStreams.get('/public')!
  const reader = await Counter.open(t, `${edge.ws}/public`)
  const slow = await Counter.open(t, `${edge.ws}/public`)
  ;(slow.socket as unknown as { _socket: { pause (): void } })._socket.pause()
  await flood(edge.app, 20_000, [reader], () => {})
  t.equal(reader.received, 20_000)
  t.equal(reader.gaps, 0)
  t.ok(route.stats.dropped > 0, `dropped ${route.stats.dropped}`)
  t.equal(route.stats.slowConsumerCloses, 0)
  ;(slow.socket as unknown as { _socket: { resume (): void } })._socket.resume()
  return { route, reader, slow }
}

t.test("slowConsumer 'drop' keeps a slow socket open, counts what it missed and, without history, tells it with a gap", async (t) => {
  const { route, slow } = await dropFlood(t, { name: 'promotional', kind: 'public' })
  await slow.until(20_000 - route.stats.dropped)
  t.equal(slow.received, 20_000 - route.stats.dropped, 'it received everything that was not dropped')
  t.same(await pong(slow), { event: 'pong', id: 'after' }, 'and is still open')
  t.equal(slow.gaps, 1, 'told once that it missed messages, once it drained')
})

t.test("slowConsumer 'drop' on a stream with history: once drained, the socket gets what it missed, in order", async (t) => {
  const { slow } = await dropFlood(t, { name: 'promotional', kind: 'public', history: { size: 20_000, ttl: 3600 } }, 20_000)
  await slow.until(20_000)
  await pong(slow)
  t.equal(slow.received, 20_000, 'every message')
  t.equal(slow.outOfOrder, 0, 'in order, none twice')
  t.equal(slow.gaps, 0)
})

t.test('limit options are validated at registration', async (t) => {
  await t.rejects(build(t, { routes: [{ path: '/ws', maxBufferedBytes: -1 }] }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  await t.rejects(build(t, { routes: [{ path: '/ws', slowConsumer: 'ignore' as 'drop' }] }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})
