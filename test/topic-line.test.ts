import t, { type Test } from 'tap'
import Fastify from 'fastify'
import type { BusMessage, HistoryStore } from '../plugins/index.js'
import { routeStats } from '../plugins/recorder.js'
import { REPAIR_CONCURRENCY, Repairs } from '../plugins/streams/repairs.js'
import { TopicLine, type LineSink } from '../plugins/streams/topic-line.js'
import { MemoryHistoryStore } from '../plugins/history/index.js'
import { messageTemplate } from '../plugins/message.js'

const BOUNDS = { size: 100, ttl: 3600 }

/** `n`-0, following `prev` (a number, '' for none, undefined for a stream without history). */
function m (n: number, prev?: number | ''): BusMessage {
  return { topic: 'notify/u/order/alice', id: `${n}-0`, frame: `{"n":${n}}`, prev: typeof prev === 'number' ? `${prev}-0` : prev }
}

/** A line whose sink records what it was told, repairs answered by hand. */
function line (history: typeof BOUNDS | undefined = BOUNDS): { line: TopicLine, delivered: string[], gaps: number[], repairs: string[] } {
  const delivered: string[] = []
  const gaps: number[] = []
  const repairs: string[] = []
  const sink: LineSink = {
    deliver: (message) => { delivered.push(message.id) },
    gap: () => { gaps.push(delivered.length) },
    repair: (since) => { repairs.push(since) }
  }
  const made = new TopicLine('notify/u/order/alice', history, sink)
  made.live = true
  return { line: made, delivered, gaps, repairs }
}

t.test('a message that follows the last one delivered passes; one that does not opens a repair from it', async (t) => {
  const { line: l, delivered, repairs } = line()
  l.receive(m(1, ''))
  l.receive(m(2, 1))
  t.same(delivered, ['1-0', '2-0'])
  l.receive(m(5, 4))
  l.receive(m(6, 5))
  t.same(repairs, ['2-0'], 'one read, from the last id delivered')
  t.same(delivered, ['1-0', '2-0'], 'later live messages wait')
  t.equal(l.repaired([m(3, 2), m(4, 3), m(5, 4)]), 3)
  t.same(delivered, ['1-0', '2-0', '3-0', '4-0', '5-0', '6-0'], 'the replay, then what waited, each once')
  l.receive(m(5, 4))
  l.receive(m(7, 6))
  t.same(delivered.slice(6), ['7-0'], 'a late live copy of a repaired message is dropped')
})

t.test('a hole history cannot fill is a gap; what waited is delivered and starts the line again', async (t) => {
  const { line: l, delivered, gaps, repairs } = line()
  l.receive(m(1, ''))
  l.receive(m(9, 8))
  l.receive(m(10, 9))
  t.same(repairs, ['1-0'])
  t.equal(l.repaired(null), 0)
  t.same(gaps, [1], 'one gap, before the waiting messages')
  t.same(delivered, ['1-0', '9-0', '10-0'])
  l.receive(m(11, 10))
  t.same(repairs, ['1-0'], 'no new hole')
})

t.test('a history that restarted empty (prev is "" again) is a hole', async (t) => {
  const { line: l, repairs } = line()
  l.receive(m(1, ''))
  l.receive(m(2, ''))
  t.same(repairs, ['1-0'])
})

t.test('before the first delivery, holes are measured from the topic\'s latest id at subscription', async (t) => {
  const empty = line()
  empty.line.started('')
  empty.line.receive(m(2, 1))
  t.same(empty.repairs, [''], 'an empty topic: read from its start')

  const known = line()
  known.line.started('5-0')
  known.line.receive(m(4, 3))
  known.line.receive(m(5, 4))
  t.same(known.delivered, ['4-0', '5-0'], 'not after the latest id: published before it was read, delivered')
  known.line.receive(m(6, 5))
  t.same(known.repairs, [])

  const later = line()
  later.line.started('5-0')
  later.line.receive(m(7, 6))
  t.same(later.repairs, ['5-0'])

  const unknown = line()
  unknown.line.started(null)
  unknown.line.receive(m(7, 6))
  t.same(unknown.delivered, ['7-0'], 'nothing known: the first message starts the line')

  const delivered = line()
  delivered.line.receive(m(3, 2))
  delivered.line.started('9-0')
  delivered.line.receive(m(4, 3))
  t.same(delivered.delivered, ['3-0', '4-0'], 'a latest id read after a delivery is ignored')
})

t.test('messages of a stream without history pass through, in any id order', async (t) => {
  const { line: l, delivered, repairs } = line(undefined)
  l.receive(m(2))
  l.receive(m(1))
  t.same(delivered, ['2-0', '1-0'])
  t.same(repairs, [])
})

t.test('after a re-subscription the line is checked against history even with no new message', async (t) => {
  const withHistory = line()
  withHistory.line.receive(m(1, ''))
  withHistory.line.resubscribed()
  t.same(withHistory.repairs, ['1-0'])
  withHistory.line.receive(m(3, 2))
  t.same(withHistory.delivered, ['1-0'], 'live messages wait for the check')
  withHistory.line.repaired([m(2, 1), m(3, 2)])
  t.same(withHistory.delivered, ['1-0', '2-0', '3-0'])
  t.same(withHistory.gaps, [])

  const started = line()
  started.line.started('')
  started.line.resubscribed()
  t.same(started.repairs, [''], 'a topic that had nothing: read from its start')

  const noHistory = line(undefined)
  noHistory.line.resubscribed()
  t.same(noHistory.gaps, [0], 'without history nothing can tell: a gap')

  const unknown = line()
  unknown.line.started(null)
  unknown.line.resubscribed()
  t.same(unknown.gaps, [0], 'position unknown: a gap')

  const starting = line()
  starting.line.starting = true
  starting.line.resubscribed()
  t.same([starting.gaps, starting.repairs], [[], []], 'just subscribed, nothing delivered yet: nothing to check')

  const idle = line()
  idle.line.live = false
  idle.line.resubscribed()
  t.same([idle.gaps, idle.repairs], [[], []], 'not live yet: its subscribe is answered after the re-subscription')
})

t.test('a re-subscription during a repair checks again once it is done', async (t) => {
  const { line: l, delivered, repairs } = line()
  l.receive(m(1, ''))
  l.receive(m(3, 2))
  l.resubscribed()
  t.same(repairs, ['1-0'])
  l.receive(m(4, 3))
  l.repaired([m(2, 1), m(3, 2)])
  t.same(repairs, ['1-0', '3-0'], 'read again after what the first read delivered')
  t.same(delivered, ['1-0', '2-0', '3-0'])
  l.repaired([m(4, 3)])
  t.same(delivered, ['1-0', '2-0', '3-0', '4-0'], 'the live copy that waited is not delivered twice')
})

t.test('a topic left during a repair delivers nothing', async (t) => {
  const { line: l, delivered, gaps } = line()
  l.receive(m(1, ''))
  l.receive(m(3, 2))
  l.closed = true
  t.equal(l.repaired(null), 0)
  l.resubscribed()
  t.same([delivered, gaps], [['1-0'], []])
})

t.test('repairs read once per topic, at most REPAIR_CONCURRENCY at a time', async (t) => {
  const store = new MemoryHistoryStore()
  t.teardown(() => store.close())
  let reading = 0
  let most = 0
  const gated = Object.assign(Object.create(store) as MemoryHistoryStore, {
    async read (...args: Parameters<MemoryHistoryStore['read']>) {
      most = Math.max(most, ++reading)
      await new Promise((resolve) => setImmediate(resolve))
      reading--
      return store.read(...args)
    }
  })
  const stats = routeStats()
  const repairs = new Repairs({ store: gated, maxReplay: 300 }, Fastify({ logger: false }).log, stats)
  const delivered: string[] = []
  const lines = Array.from({ length: REPAIR_CONCURRENCY * 3 }, (_, n) => {
    const topic = `notify/u/order/u${n}`
    const l: TopicLine = new TopicLine(topic, BOUNDS, {
      deliver: (message) => { delivered.push(message.id) },
      gap: () => t.fail('no gap'),
      repair: (since) => repairs.run(l, since)
    })
    return l
  })
  for (const l of lines) {
    const first = await store.append(l.topic, messageTemplate('order', {}), BOUNDS)
    l.receive(first)
    await store.append(l.topic, messageTemplate('order', {}), BOUNDS)
    l.live = true
    l.resubscribed()
  }
  await new Promise<void>(function wait (resolve) { if (delivered.length === lines.length * 2) resolve(); else setImmediate(wait, resolve) })
  t.equal(most, REPAIR_CONCURRENCY)
  t.equal(stats.repaired, lines.length)
})

/** A memory store whose reads fail `failures` times first. */
class FlakyStore implements HistoryStore {
  readonly appendPublishes = false
  readonly inner = new MemoryHistoryStore()
  reads = 0

  constructor (private readonly failures: number) {}

  append (...args: Parameters<HistoryStore['append']>): Promise<BusMessage> {
    return this.inner.append(...args)
  }

  async read (...args: Parameters<HistoryStore['read']>): Promise<BusMessage[] | null> {
    if (++this.reads <= this.failures) throw new Error('history is down')
    return this.inner.read(...args)
  }

  latest (topic: string): Promise<string> {
    return this.inner.latest(topic)
  }

  close (): Promise<void> {
    return this.inner.close()
  }
}

function flaky (t: Test, failures: number): { store: FlakyStore, reads: () => number } {
  const store = new FlakyStore(failures)
  t.teardown(() => store.close())
  return { store, reads: () => store.reads }
}

/** A line repaired through `repairs`; resolves with what it was told once the repair is done. */
function repairedLine (repairs: Repairs, store: HistoryStore, topic: string): Promise<{ delivered: string[], gaps: number }> {
  return new Promise((resolve) => {
    const told = { delivered: [] as string[], gaps: 0 }
    const l: TopicLine = new TopicLine(topic, BOUNDS, {
      deliver: (message) => { told.delivered.push(message.id) },
      gap: () => { told.gaps++ },
      repair: (since) => {
        repairs.run(l, since)
        const done = (): void => { if (told.gaps > 0 || told.delivered.length > 0) resolve(told); else setImmediate(done) }
        done()
      }
    })
    store.latest(topic).then((latest) => {
      l.live = true
      l.started(latest)
      l.resubscribed()
    })
  })
}

t.test('a history read that keeps failing is a gap, after a few attempts', async (t) => {
  const { store, reads } = flaky(t, Infinity)
  const repairs = new Repairs({ store, maxReplay: 300 }, Fastify({ logger: false }).log, routeStats(), [1, 1])
  t.same(await repairedLine(repairs, store, 'notify/p/x'), { delivered: [], gaps: 1 })
  t.equal(reads(), 3)
})

t.test('a history read that fails while its client reconnects is tried again, and repairs', async (t) => {
  const { store, reads } = flaky(t, 2)
  const first = await store.append('notify/p/y', messageTemplate('y', {}), BOUNDS)
  const repairs = new Repairs({ store, maxReplay: 300 }, Fastify({ logger: false }).log, routeStats(), [1, 1])
  const repaired = repairedLine(repairs, store, 'notify/p/y')
  await store.append('notify/p/y', messageTemplate('y', {}), BOUNDS)
  const second = (await store.inner.read('notify/p/y', first.id, BOUNDS, 10))![0]
  t.not(second, undefined)
  t.same(await repaired, { delivered: [second.id], gaps: 0 })
  t.equal(reads(), 3)
})

t.test('closing the repairs ends a pause between attempts, and nothing is delivered', async (t) => {
  const { store, reads } = flaky(t, Infinity)
  const repairs = new Repairs({ store, maxReplay: 300 }, Fastify({ logger: false }).log, routeStats(), [60_000])
  const told: string[] = []
  const l: TopicLine = new TopicLine('notify/p/z', BOUNDS, { deliver: () => told.push('deliver'), gap: () => told.push('gap'), repair: (since) => repairs.run(l, since) })
  l.live = true
  l.started('')
  l.resubscribed()
  while (reads() === 0) await new Promise((resolve) => setImmediate(resolve))
  repairs.close()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(told, [])
})
