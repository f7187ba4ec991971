import t from 'tap'
import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'
import type { MQEmitter } from 'mqemitter'
import { notifyBus, type BusMessage } from '../plugins/index.js'
import { admin, busApp, recorder } from './abstract/bus.js'
import { sharedRedis } from './redis-server.js'

// The bus's write coalescing on Redis (`flushInterval`). Whether publishes are held or written is
// read off the publishing connection's TCP stream (corked or not) between microtasks, where no
// timer can run; a 1000 ms interval keeps held publishes held for the length of each check.

type Test = { teardown: (fn: () => unknown) => void }
type PubConn = Redis & { stream: { writableCorked: number, writableLength: number } }

const message = (topic: string, n: number): BusMessage => ({ topic, id: `${n}-0`, frame: `{"n":${n}}` })

/** Lets the current turn end: every nextTick callback queued so far runs (a flush at the end of the turn), no timer can. */
const endOfTurn = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve))

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * A publishing app on a given mqemitter-redis (so that the test can see its publishing
 * connection), with `flushInterval`, and a receiving app subscribed to one topic.
 */
async function pair (t: Test, flushInterval: number): Promise<{ publisher: Awaited<ReturnType<typeof busApp>>, pub: PubConn, topic: string, received: BusMessage[], next: (n: number) => Promise<BusMessage> }> {
  const { url, prefix } = await sharedRedis(t)
  const emitter = mqemitterRedis({ connectionString: url }) as unknown as MQEmitter & { pubConn: PubConn }
  const publisher = await busApp(t, { emitter, closeEmitter: true, flushInterval, publishTimeout: 5000 })
  const receiver = await busApp(t, { redis: url })
  const topic = `${prefix}/u/order/YWxpY2U`
  const r = recorder()
  await receiver.notifyBus.subscribe(topic, r.listener)
  return { publisher, pub: emitter.pubConn, topic, received: r.received, next: (n) => r.next(`${n}-0`) }
}

t.test('rejects a flushInterval that is not a whole number of ms from 0 to 1000, or not shorter than publishTimeout', async (t) => {
  const { url } = await sharedRedis(t)
  for (const flushInterval of [-1, 1.5, 1001, '2']) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(notifyBus, { redis: url, flushInterval: flushInterval as number }).ready() },
      { code: 'FST_NOTIFY_INVALID_OPTION', message: /flushInterval must be an integer from 0 to 1000/ }, String(flushInterval))
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(notifyBus, { redis: url, flushInterval: 500, publishTimeout: 500 }).ready() },
    { code: 'FST_NOTIFY_INVALID_OPTION', message: /shorter than publishTimeout/ }, 'one that leaves a held publish no time to be answered')
})

t.test('a lone publish is written at the end of its turn, not after the interval', async (t) => {
  const { publisher, pub, topic, next } = await pair(t, 1000)
  const published = publisher.notifyBus.publish(message(topic, 1))
  t.equal(pub.stream.writableCorked, 1, 'held while its turn runs, with whatever else it publishes')
  await endOfTurn()
  t.equal(pub.stream.writableCorked, 0, 'written as its turn ends: no timer stands between it and Redis')
  t.equal(await published, 1, 'and answered')
  await next(1)
})

t.test('publishes in the turns after a write wait for the interval, leave together and arrive in order', async (t) => {
  const { publisher, pub, topic, received, next } = await pair(t, 1000)
  await publisher.notifyBus.publish(message(topic, 1))
  const later: Array<Promise<number | null>> = []
  for (let n = 2; n <= 6; n++) {
    later.push(publisher.notifyBus.publish(message(topic, n)))
    await endOfTurn()
    t.equal(pub.stream.writableCorked, 1, `publish ${n} is held, ${n - 1} turn(s) after the write`)
    await nextTurn()
  }
  t.same(received.map((m) => m.id), ['1-0'], 'nothing held has reached the receiver')
  t.same(await Promise.all(later), [1, 1, 1, 1, 1], 'each is answered once the interval has passed')
  await next(6)
  t.same(received.map((m) => m.id), ['1-0', '2-0', '3-0', '4-0', '5-0', '6-0'], 'in the order published')
})

t.test('a given mqemitter-redis is held past a turn only when flushInterval is given: others may share its connection', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const emitter = mqemitterRedis({ connectionString: url }) as unknown as MQEmitter & { pubConn: PubConn }
  const app = await busApp(t, { emitter, closeEmitter: true })
  const topic = `${prefix}/p/given`
  await app.notifyBus.publish(message(topic, 1))
  const second = app.notifyBus.publish(message(topic, 2))
  await endOfTurn()
  t.equal(emitter.pubConn.stream.writableCorked, 0, 'the turn after a write is written at its end')
  t.equal(await second, 0)
})

t.test('64 KiB held go without waiting for the rest of the interval', async (t) => {
  const { publisher, pub, topic, received, next } = await pair(t, 1000)
  await publisher.notifyBus.publish(message(topic, 1))
  const big = (n: number): BusMessage => ({ ...message(topic, n), frame: JSON.stringify({ n, pad: 'x'.repeat(40_000) }) })
  const replies = [2, 3].map((n) => publisher.notifyBus.publish(big(n)))
  await endOfTurn()
  t.ok(pub.stream.writableLength > 64 * 1024, 'two of 40 KB are held')
  const fourth = publisher.notifyBus.publish(big(4))
  t.same(await Promise.all(replies), [1, 1], 'the next publish sent them')
  await next(3)
  t.equal(pub.stream.writableCorked, 1, 'and is held itself, for the interval')
  t.same(received.map((m) => m.id), ['1-0', '2-0', '3-0'])
  t.equal(await fourth, 1)
})

t.test('closing the app sends held publishes at once instead of waiting for the interval', async (t) => {
  const { publisher, pub, topic, next } = await pair(t, 1000)
  await publisher.notifyBus.publish(message(topic, 1))
  const held = publisher.notifyBus.publish(message(topic, 2))
  await endOfTurn()
  t.equal(pub.stream.writableCorked, 1, 'held')
  const started = Date.now()
  await publisher.close()
  t.ok(Date.now() - started < 900, 'close did not wait for the flush timer')
  t.equal(await held, 1, 'the held publish went out before QUIT, and was answered')
  await next(2)
})

t.test('a publish held when its connection drops is resent, and the new connection is not held by the old one', async (t) => {
  const { url } = await sharedRedis(t)
  const { publisher, pub, topic, received, next } = await pair(t, 1000)
  const id = await pub.client('ID') as number
  await publisher.notifyBus.publish(message(topic, 1))
  const held = publisher.notifyBus.publish(message(topic, 2))
  await endOfTurn()
  t.equal(pub.stream.writableCorked, 1, 'held')
  await admin(t, url).client('KILL', 'ID', String(id))
  // mqemitter-redis's own connection resends what was unanswered (the bus's own does not: a
  // caller has had its 503 by then; redis-faults.test.ts).
  t.equal(await held, 1, 'publish 2 went out on the new connection')
  const afterwards = publisher.notifyBus.publish(message(topic, 3))
  await endOfTurn()
  t.equal(pub.stream.writableCorked, 0, 'the new connection is written at the end of the turn')
  t.equal(await afterwards, 1)
  await next(3)
  t.same(received.map((m) => m.id), ['1-0', '2-0', '3-0'])
})

for (const redisEmitter of ['mqemitter-redis', 'lean'] as const) {
  t.test(`${redisEmitter}: a steady stream of publishes, one per turn, arrives whole and in order`, async (t) => {
    const { url, prefix } = await sharedRedis(t)
    const topic = `${prefix}/p/ticker`
    const [publisher, receiver] = await Promise.all([busApp(t, { redis: url, redisEmitter, flushInterval: 3 }), busApp(t, { redis: url, redisEmitter })])
    const r = recorder()
    await receiver.notifyBus.subscribe(topic, r.listener)
    const replies: Array<Promise<number | null>> = []
    for (let n = 1; n <= 300; n++) {
      replies.push(publisher.notifyBus.publish(message(topic, n)))
      await nextTurn()
    }
    t.ok((await Promise.all(replies)).every((receivers) => receivers === 1), 'every publish answered, one receiver each')
    await r.next('300-0')
    t.same(r.received.map((m) => m.id), Array.from({ length: 300 }, (_, i) => `${i + 1}-0`))
  })
}
