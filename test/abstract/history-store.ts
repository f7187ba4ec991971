import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { compareMessageIds, type HistoryBounds, type HistoryStore } from '../../plugins/index.js'
import { messageTemplate } from '../../plugins/message.js'
import { latestAll, readAll } from '../../plugins/history/store.js'

/** A clock the tests move by hand; it starts at the real time, as Redis ids do. */
export class TestClock {
  ms = Date.now()
  readonly now = (): number => this.ms
  advance (seconds: number): void {
    this.ms += seconds * 1000
  }
}

/** Builds a fresh store reading time from `now`, closed when the test ends. */
export type HistoryStoreBuilder = (t: Test, now: () => number) => Promise<HistoryStore>

const ROOMY: HistoryBounds = { size: 1000, ttl: 3600 }

/**
 * What every HistoryStore must do, whatever its backend (mqemitter's abstract-test style): run it
 * with a builder per backend. Every test writes to topics of its own.
 */
export function historyStoreSuite (t: Test, build: HistoryStoreBuilder): void {
  const topic = (): string => `history-suite/${randomBytes(6).toString('hex')}`

  async function fill (store: HistoryStore, name: string, count: number, bounds = ROOMY): Promise<string[]> {
    const ids: string[] = []
    for (let n = 0; n < count; n++) ids.push((await store.append(name, messageTemplate('s', { n }), bounds)).id)
    return ids
  }

  t.test('assigns unique, increasing ids and builds each frame around its id', async (t) => {
    const clock = new TestClock()
    const store = await build(t, clock.now)
    const name = topic()
    const message = await store.append(name, messageTemplate('order', { status: 'placed' }), ROOMY)
    t.equal(message.topic, name)
    t.same(JSON.parse(message.frame), { event: 'message', stream: 'order', id: message.id, ts: JSON.parse(message.frame).ts, data: { status: 'placed' } })
    t.ok(Math.abs(JSON.parse(message.frame).ts - clock.ms) < 1000, 'ts is the time of the append')
    const ids = [message.id, ...await fill(store, name, 20)]
    for (let i = 1; i < ids.length; i++) t.ok(compareMessageIds(ids[i - 1], ids[i]) < 0, `${ids[i - 1]} < ${ids[i]}`)
  })

  t.test('reads every message after since, oldest first, with the frames it published', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    const published = []
    for (let n = 0; n < 5; n++) {
      // `receivers` (set by a store that also publishes) is about the bus, not history.
      const { receivers: _, ...message } = await store.append(name, messageTemplate('s', { n }), ROOMY)
      published.push(message)
    }
    t.same(await store.read(name, published[1].id, ROOMY, 100), published.slice(2))
    t.same(await store.read(name, published[1].id, ROOMY, 100), published.slice(2), 'a read changes nothing')
  })

  t.test('reads nothing, and no gap, after the latest message', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    const ids = await fill(store, name, 3)
    t.same(await store.read(name, ids[2], ROOMY, 100), [])
  })

  t.test('reports a gap for an id the topic never had', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    const ids = await fill(store, name, 3)
    const [ms] = ids[1].split('-')
    for (const since of ['1-0', `${Number(ms) + 3_600_000}-0`, `${ms}-999999`, 'not-an-id', '01-0', '18446744073709551616-0', `${ms}-99999999999999999999`]) {
      t.equal(await store.read(name, since, ROOMY, 100), null, `since ${since}`)
    }
    t.equal(await store.read(topic(), ids[0], ROOMY, 100), null, 'a topic without history')
  })

  t.test('each message names its predecessor in the topic, and the topic knows its latest id', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    t.equal(await store.latest(name), '', 'a topic without messages')
    const appended = []
    for (let n = 0; n < 4; n++) appended.push(await store.append(name, messageTemplate('s', { n }), ROOMY))
    t.same(appended.map((m) => m.prev), ['', ...appended.slice(0, 3).map((m) => m.id)])
    t.same((await store.read(name, appended[0].id, ROOMY, 100))?.map((m) => m.prev), appended.slice(0, 3).map((m) => m.id), 'reads carry it too')
    t.equal(await store.latest(name), appended[3].id)
  })

  t.test('reads from the start of a topic with since \'\' while nothing was trimmed', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    t.same(await store.read(name, '', ROOMY, 100), [], 'an empty topic')
    const ids = await fill(store, name, 3)
    t.same((await store.read(name, '', ROOMY, 100))?.map((m) => m.id), ids)
    const bounds = { size: 5, ttl: 3600 }
    const trimmed = topic()
    await fill(store, trimmed, 250, bounds)
    t.equal(await store.read(trimmed, '', bounds, 1000), null, 'its first messages are gone')
  })

  t.test('keeps topics apart', async (t) => {
    const store = await build(t, new TestClock().now)
    const [a, b] = [topic(), topic()]
    const idsA = await fill(store, a, 3)
    const idsB = await fill(store, b, 3)
    const readB = await store.read(b, idsB[0], ROOMY, 100)
    t.same(readB?.map((m) => m.id), idsB.slice(1))
    t.ok(readB?.every((m) => m.topic === b))
    t.same((await store.read(a, idsA[0], ROOMY, 100))?.map((m) => m.id), idsA.slice(1))
  })

  t.test('reports a gap once the message after since was trimmed by size', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    const bounds = { size: 5, ttl: 3600 }
    // Enough to trim even a store that trims approximately (Redis MAXLEN ~ drops whole nodes).
    const ids = await fill(store, name, 250, bounds)
    t.equal(await store.read(name, ids[0], bounds, 1000), null)
    t.equal(await store.read(name, ids[100], bounds, 1000), null)
    t.same((await store.read(name, ids[244], bounds, 1000))?.map((m) => m.id), ids.slice(245), 'the last `size` are kept')
  })

  t.test('reports a gap once the message after since has expired', async (t) => {
    const clock = new TestClock()
    const store = await build(t, clock.now)
    const name = topic()
    const bounds = { size: 100, ttl: 10 }
    const [a, b] = await fill(store, name, 2, bounds)
    clock.advance(5)
    const [c] = await fill(store, name, 1, bounds)
    clock.advance(6)
    t.equal(await store.read(name, a, bounds, 100), null, 'b is 11 s old')
    t.same((await store.read(name, b, bounds, 100))?.map((m) => m.id), [c])
    clock.advance(60)
    t.equal(await store.read(name, b, bounds, 100), null, 'c expired too')
    t.same(await store.read(name, c, bounds, 100), [], 'a client that saw the latest message missed nothing')
  })

  t.test('reports a gap rather than return more than limit messages', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    const ids = await fill(store, name, 10)
    t.equal((await store.read(name, ids[0], ROOMY, 9))?.length, 9, 'exactly limit')
    t.equal(await store.read(name, ids[0], ROOMY, 8), null)
  })

  t.test('keeps ids unique and in order under concurrent appends', async (t) => {
    const store = await build(t, new TestClock().now)
    const name = topic()
    const [first] = await fill(store, name, 1)
    const appended = await Promise.all(Array.from({ length: 50 }, (_, n) => store.append(name, messageTemplate('s', { n }), ROOMY)))
    const ids = appended.map((m) => m.id)
    t.equal(new Set(ids).size, 50)
    const read = await store.read(name, first, ROOMY, 100)
    t.same(read?.map((m) => m.id), [...ids].sort(compareMessageIds))
  })

  t.test('reads 50 topics in one readAll as each alone: messages, nothing, or a gap', async (t) => {
    const store = await build(t, new TestClock().now)
    const names = Array.from({ length: 50 }, topic)
    const ids = await Promise.all(names.map((name, i) => fill(store, name, 1 + i % 4)))
    // Each kind of answer in turn: some messages, all from the start, nothing after the latest,
    // a gap for a since that is no id, a gap for an id the topic never had, a gap past the limit.
    const sinceOf = (i: number): string => [ids[i][0], '', ids[i].at(-1)!, 'not-an-id', '1-0', ids[i][0]][i % 6]
    const limitOf = (i: number): number => i % 6 === 5 ? 1 : 100
    const reads = names.map((name, i) => ({ topic: name, since: sinceOf(i), bounds: ROOMY, limit: limitOf(i) }))
    const together = await readAll(store, reads)
    const alone = await Promise.all(reads.map(({ topic, since, bounds, limit }) => store.read(topic, since, bounds, limit)))
    t.same(together, alone, 'the same answers as one read per topic')
    const expected = names.map((_, i) => [ids[i].slice(1), ids[i], [], null, null, ids[i].length > 2 ? null : ids[i].slice(1)][i % 6])
    t.same(together.map((messages) => messages?.map((m) => m.id) ?? null), expected)
    t.equal(together.filter((m) => m === null).length, 8 + 8 + 4, 'the gaps: 8 bad ids, 8 unknown ids, 4 past the limit')
    t.same(await latestAll(store, [...names, topic()]), [...ids.map((own) => own.at(-1)), ''], 'latest of each, \'\' for a topic never written')
    t.same(await readAll(store, []), [], 'no reads, no answers')
  })
}
