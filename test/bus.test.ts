import Fastify from 'fastify'
import mqemitter, { type MQEmitter } from 'mqemitter'
import t, { type Test } from 'tap'
import { notifyBus, type BusMessage, type NotifyBus } from '../plugins/index.js'
import { declareStreams } from '../plugins/declarations.js'
import { routeStats } from '../plugins/recorder.js'
import { Fanout, type Subscriber } from '../plugins/streams/fanout.js'
import type { OutboundFrame } from '../plugins/streams/wire.js'
import { countingEmitter } from './helpers.js'
import { logCapture } from './log-capture.js'

async function bus (t: Test, emitter: MQEmitter, logs = logCapture()): Promise<NotifyBus> {
  const app = Fastify({ logger: { level: 'error', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(notifyBus, { emitter, closeEmitter: true })
  await app.ready()
  return app.notifyBus
}

const message = (topic: string, n: number): BusMessage => ({ topic, id: `${n}-0`, frame: `{"n":${n}}` })

/** A listener that records what it receives and can wait for the n-th message. */
function recorder (): { listener: (m: BusMessage) => void, got: BusMessage[] } {
  const got: BusMessage[] = []
  return { listener: (m) => { got.push(m) }, got }
}

t.test('one emitter listener per topic, however many listeners, released with the last one', async (t) => {
  const c = countingEmitter()
  const b = await bus(t, c.emitter)
  const [one, two, three] = [recorder(), recorder(), recorder()]
  await Promise.all([one, two, three].map((r) => b.subscribe('notify/p/a', r.listener)))
  await b.subscribe('notify/p/b', one.listener)
  t.equal(c.added(), 2)
  t.equal(b.topicCount(), 2)

  await b.publish(message('notify/p/a', 1))
  t.same([one.got, two.got, three.got].map((got) => got.map((m) => m.id)), [['1-0'], ['1-0'], ['1-0']])
  t.same(one.got[0], message('notify/p/a', 1), 'the message arrives as published')

  await b.unsubscribe('notify/p/a', one.listener)
  await b.unsubscribe('notify/p/a', two.listener)
  t.equal(c.removed(), 0, 'still one listener on the topic')
  await b.publish(message('notify/p/a', 2))
  t.same(three.got.map((m) => m.id), ['1-0', '2-0'])
  t.same(one.got.map((m) => m.id), ['1-0'], 'an unsubscribed listener gets nothing more')

  await b.unsubscribe('notify/p/a', three.listener)
  t.equal(c.removed(), 1)
  t.equal(b.topicCount(), 1)
})

t.test('unsubscribing what was never subscribed does nothing', async (t) => {
  const c = countingEmitter()
  const b = await bus(t, c.emitter)
  const r = recorder()
  await b.unsubscribe('notify/p/none', r.listener)
  await b.subscribe('notify/p/a', r.listener)
  await b.unsubscribe('notify/p/a', recorder().listener)
  t.equal(c.removed(), 0)
  t.equal(b.topicCount(), 1)
})

t.test('a topic dropped and taken again at once delivers exactly once', async (t) => {
  const b = await bus(t, mqemitter())
  const r = recorder()
  await b.subscribe('notify/p/a', r.listener)
  const dropped = b.unsubscribe('notify/p/a', r.listener)
  const taken = b.subscribe('notify/p/a', r.listener) // mqemitter removes listeners on the next tick
  await Promise.all([dropped, taken])
  await b.publish(message('notify/p/a', 1))
  t.same(r.got.map((m) => m.id), ['1-0'])
})

t.test('a listener that throws is logged and does not stop the others', async (t) => {
  const logs = logCapture()
  const b = await bus(t, mqemitter(), logs)
  const r = recorder()
  await b.subscribe('notify/p/a', () => { throw new Error('boom') })
  await b.subscribe('notify/p/a', r.listener)
  await b.publish(message('notify/p/a', 1))
  t.equal(r.got.length, 1)
  t.match(await logs.next('notify bus listener failed'), { level: 50, err: { message: 'boom' } })
})

t.test('fan-out writes one shared frame to every local subscriber of a topic', async (t) => {
  const b = await bus(t, mqemitter())
  const fanout = new Fanout(b, { history: null, log: Fastify({ logger: false }).log, stats: routeStats() })
  t.teardown(() => fanout.close())
  const stream = declareStreams([{ name: 'a', kind: 'public' }], 'notify').get('a')!
  const frames: OutboundFrame[] = []
  const subscribers: Subscriber[] = [1, 2, 3].map(() => ({ deliver: (frame: OutboundFrame) => { frames.push(frame) }, gap () {}, close () {} }))
  await Promise.all(subscribers.map((s) => fanout.add('notify/p/a', s, stream)))
  t.equal(fanout.size, 1)
  t.equal(b.topicCount(), 1, 'one bus listener for three sockets')
  await b.publish(message('notify/p/a', 1))
  t.equal(frames.length, 3)
  t.ok(frames.every((f) => f === frames[0]), 'the very same frame, serialized once')
  t.equal(frames[0].payload.toString(), '{"n":1}')

  await fanout.remove('notify/p/a', subscribers[0])
  await fanout.remove('notify/p/a', subscribers[0])
  await fanout.remove('notify/p/none', subscribers[0])
  t.equal(b.topicCount(), 1)
  await Promise.all(subscribers.slice(1).map((s) => fanout.remove('notify/p/a', s)))
  t.equal(fanout.size, 0)
  t.equal(b.topicCount(), 0)
})

t.test('a socket whose delivery throws is closed with 1011, and the others still get the message', async (t) => {
  const logs = logCapture()
  const b = await bus(t, mqemitter())
  const fanout = new Fanout(b, { history: null, log: Fastify({ logger: { level: 'error', stream: logs.stream } }).log, stats: routeStats() })
  t.teardown(() => fanout.close())
  const stream = declareStreams([{ name: 'a', kind: 'public' }], 'notify').get('a')!
  const got: string[] = []
  const closed: number[] = []
  const subscriber = (name: string, fail = false): Subscriber => ({
    deliver () {
      if (fail) throw new Error('boom')
      got.push(name)
    },
    gap () {},
    close (code) { closed.push(code) }
  })
  for (const s of [subscriber('one'), subscriber('broken', true), subscriber('three')]) await fanout.add('notify/p/a', s, stream)
  await b.publish(message('notify/p/a', 1))
  t.same(got, ['one', 'three'])
  t.same(closed, [1011])
  t.match(await logs.next('notify delivery to a socket failed'), { level: 50, err: { message: 'boom' } })
})

t.test('closing an emitter that never answers is abandoned after closeTimeout', async (t) => {
  const emitter = mqemitter()
  const stuck = Object.assign(Object.create(emitter) as MQEmitter, { close: () => undefined })
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  await app.register(notifyBus, { emitter: stuck, closeEmitter: true, closeTimeout: 100 })
  await app.ready()
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 1000, 'close did not hang')
  t.match(await logs.next('did not close in time'), { closeTimeout: 100 })
})
