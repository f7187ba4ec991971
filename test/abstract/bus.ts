// One suite for every bus backend, in the style of mqemitter's abstractTest.
import type tap from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { notifyBus, type BusMessage, type NotifyBus, type NotifyBusOptions } from '../../plugins/index.js'
import { logCapture, type LogCapture } from '../log-capture.js'

// The last overload of `test` is `(cb)`: its parameter is the subtest type.
type Test = Parameters<Parameters<typeof tap.test>[0]>[0]

export interface BusSuite {
  /** Builds a fresh bus; anything it opens is closed by the builder through `t.teardown`. */
  builder (t: Test): Promise<NotifyBus>
  /** Makes topics unique to a run when backends share state (e.g. one Redis). */
  prefix: string
  test: typeof tap.test
}

type Teardown = { teardown: (fn: () => unknown) => void }

/** A Fastify app with only the bus, closed at the end of `t`; it logs into `log` (debug level). */
export async function busApp (t: Teardown, opts: NotifyBusOptions, log: LogCapture = logCapture()): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify({ logger: { level: 'debug', stream: log.stream } })
  t.teardown(() => app.close())
  await app.register(notifyBus, opts)
  await app.ready()
  return app
}

/** A plain client of the test's Redis, to look at or prod it; disconnected at the end of `t`. */
export function admin (t: Teardown, url: string): Redis {
  const redis = new Redis(url)
  t.teardown(() => redis.disconnect())
  return redis
}

/** A listener that records what it receives and lets a test wait for a given message. */
export function recorder (): { listener: (message: BusMessage) => void, received: BusMessage[], next: (id: string) => Promise<BusMessage> } {
  const received: BusMessage[] = []
  const waiting = new Map<string, (message: BusMessage) => void>()
  return {
    received,
    listener (message) {
      received.push(message)
      waiting.get(message.id)?.(message)
    },
    next (id) {
      const seen = received.find((m) => m.id === id)
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve) => waiting.set(id, resolve))
    }
  }
}

export function busSuite ({ builder, prefix, test }: BusSuite): void {
  let n = 0
  const topic = (name: string): string => `${prefix}/${++n}/${name}`
  const message = (to: string, id: string): BusMessage => ({ topic: to, id, frame: `{"event":"message","id":"${id}"}` })

  test('a listener receives what is published on its topic, as published', async (t) => {
    const bus = await builder(t)
    const orders = topic('orders')
    const r = recorder()
    await bus.subscribe(orders, r.listener)
    await bus.publish(message(orders, '1-0'))
    t.same(await r.next('1-0'), message(orders, '1-0'))
  })

  test('a listener receives nothing published on other topics', async (t) => {
    const bus = await builder(t)
    const [mine, other] = [topic('mine'), topic('other')]
    const r = recorder()
    await bus.subscribe(mine, r.listener)
    await bus.publish(message(other, 'x-0'))
    // Published after, delivered after: once it is here, the other would have been too.
    await bus.publish(message(mine, '1-0'))
    await r.next('1-0')
    t.same(r.received.map((m) => m.id), ['1-0'])
  })

  test('listeners sharing a topic hold one subscription and each get every message once', async (t) => {
    const bus = await builder(t)
    const shared = topic('shared')
    const [a, b] = [recorder(), recorder()]
    await Promise.all([bus.subscribe(shared, a.listener), bus.subscribe(shared, b.listener)])
    t.equal(bus.topicCount(), 1)
    await bus.publish(message(shared, '1-0'))
    await bus.publish(message(shared, '2-0'))
    await Promise.all([a.next('2-0'), b.next('2-0')])
    t.same(a.received.map((m) => m.id), ['1-0', '2-0'])
    t.same(b.received.map((m) => m.id), ['1-0', '2-0'])
  })

  test('the subscription stays while a listener remains and goes with the last one', async (t) => {
    const bus = await builder(t)
    const [shared, sentinel] = [topic('shared'), topic('sentinel')]
    const [a, b, s] = [recorder(), recorder(), recorder()]
    await bus.subscribe(shared, a.listener)
    await bus.subscribe(shared, b.listener)
    await bus.subscribe(sentinel, s.listener)
    await bus.unsubscribe(shared, a.listener)
    t.equal(bus.topicCount(), 2)
    await bus.publish(message(shared, '1-0'))
    await b.next('1-0')
    await bus.unsubscribe(shared, b.listener)
    t.equal(bus.topicCount(), 1)
    await bus.publish(message(shared, '2-0'))
    await bus.publish(message(sentinel, 's-0'))
    await s.next('s-0')
    t.same(a.received.map((m) => m.id), [], 'unsubscribed first: nothing')
    t.same(b.received.map((m) => m.id), ['1-0'], 'nothing after the topic went')
  })

  test('unsubscribing what was never subscribed is harmless', async (t) => {
    const bus = await builder(t)
    const r = recorder()
    await bus.unsubscribe(topic('never'), r.listener)
    const once = topic('once')
    await bus.subscribe(once, r.listener)
    await bus.unsubscribe(once, recorder().listener)
    t.equal(bus.topicCount(), 1)
  })

  test('a topic can be subscribed again after its last listener left', async (t) => {
    const bus = await builder(t)
    const again = topic('again')
    const [a, b] = [recorder(), recorder()]
    await bus.subscribe(again, a.listener)
    await bus.unsubscribe(again, a.listener)
    await bus.subscribe(again, b.listener)
    await bus.publish(message(again, '1-0'))
    await b.next('1-0')
    t.same(a.received, [])
  })

  test('a listener that throws does not keep the others from their message', async (t) => {
    const bus = await builder(t)
    const shared = topic('throws')
    const r = recorder()
    await bus.subscribe(shared, () => { throw new Error('listener bug') })
    await bus.subscribe(shared, r.listener)
    await bus.publish(message(shared, '1-0'))
    await r.next('1-0')
    t.pass('delivered')
  })

  test('publishing to a topic nobody wants resolves with no receivers', async (t) => {
    const bus = await builder(t)
    t.equal(await bus.publish(message(topic('nobody'), '1-0')), 0)
    t.equal(bus.topicCount(), 0)
  })

  test('a publish resolves with the instances subscribed to its topic at publish time', async (t) => {
    const bus = await builder(t)
    const wanted = topic('wanted')
    const [a, b] = [recorder(), recorder()]
    await bus.subscribe(wanted, a.listener)
    await bus.subscribe(wanted, b.listener)
    t.equal(await bus.publish(message(wanted, '1-0')), 1, 'one instance, however many listeners')
    await bus.unsubscribe(wanted, a.listener)
    await bus.unsubscribe(wanted, b.listener)
    t.equal(await bus.publish(message(wanted, '2-0')), 0, 'none once the last listener left')
  })

  test('reports itself healthy', async (t) => {
    const bus = await builder(t)
    t.equal(bus.health().healthy, true)
  })
}
