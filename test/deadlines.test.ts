import t from 'tap'
import { Deadlines } from '../plugins/util.js'

// Deadlines is `within` with one timer for many calls: the same answers, in the same cases.

function later<T> (ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(resolve, ms, value))
}

t.test('work that settles in time gives its value or its rejection', async (t) => {
  const deadlines = new Deadlines(200)
  t.same(await deadlines.race(Promise.resolve(1)), { value: 1 })
  t.same(await deadlines.race(later(10, 'x')), { value: 'x' })
  await t.rejects(deadlines.race(Promise.reject(new Error('boom'))), { message: 'boom' })
})

t.test('work that does not settle in time gives null, each call at its own deadline, in order', async (t) => {
  const deadlines = new Deadlines(40)
  const started = performance.now()
  const first = deadlines.race(new Promise(() => {}))
  await later(25, null)
  const second = deadlines.race(new Promise(() => {}))
  const fast = deadlines.race(later(5, 'fast'))
  t.same(await fast, { value: 'fast' }, 'a quick call is not held behind slow ones')
  t.equal(await first, null)
  const firstAt = performance.now() - started
  t.ok(firstAt >= 39, `the first expired after its 40 ms (${firstAt.toFixed(1)})`)
  t.equal(await second, null)
  // 40 ms after it started (at 25 ms, or a ms before by this clock: a timer counts whole ms).
  t.ok(performance.now() - started >= 63, 'the second expired 40 ms after it started, not with the first')
})

t.test('a late answer after the deadline changes nothing', async (t) => {
  const deadlines = new Deadlines(10)
  let answer!: (value: string) => void
  const work = new Promise<string>((resolve) => { answer = resolve })
  t.equal(await deadlines.race(work), null)
  answer('late')
  await work
  t.same(await deadlines.race(Promise.resolve('next')), { value: 'next' }, 'and the next call works')
})

t.test('no timer outlives the work: a process with nothing pending can exit at once', async (t) => {
  const deadlines = new Deadlines(60_000)
  await Promise.all(Array.from({ length: 3000 }, (_, i) => deadlines.race(Promise.resolve(i))))
  const handles = process.getActiveResourcesInfo()
  t.notOk(handles.includes('Timeout'), `no timer left: ${handles.join(', ')}`)
})

t.test('thousands of calls that expired before a later pending one leave the queue compacted and working', async (t) => {
  const deadlines = new Deadlines(20)
  const never = new Promise<number>(() => {})
  const early = Array.from({ length: 2000 }, () => deadlines.race(never))
  await later(10, null)
  const last = deadlines.race(never)
  const expired = await Promise.all(early)
  t.equal(expired.filter((r) => r === null).length, 2000, 'every early call expired')
  // The timer re-armed for the one still pending, and new calls still work meanwhile.
  t.same(await deadlines.race(Promise.resolve('meanwhile')), { value: 'meanwhile' })
  t.equal(await last, null, 'the later call expired at its own deadline')
})

t.test('a timer kept from an earlier batch keeps no process alive, and a later call still gets its full time', async (t) => {
  const deadlines = new Deadlines(40)
  t.same(await deadlines.race(Promise.resolve('first')), { value: 'first' })
  t.notOk(process.getActiveResourcesInfo().includes('Timeout'), 'idle: the armed timer is unref\'d')
  await later(25, null)
  const started = performance.now()
  const pending = deadlines.race(new Promise(() => {}))
  t.ok(process.getActiveResourcesInfo().includes('Timeout'), 'a pending call holds the process again')
  t.equal(await pending, null)
  const waited = performance.now() - started
  t.ok(waited >= 39, `expired after its own 40 ms (${waited.toFixed(1)}), not when the earlier batch's timer fired`)
})
