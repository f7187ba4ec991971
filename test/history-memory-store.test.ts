import t from 'tap'
import { MemoryHistoryStore, compareMessageIds, isMessageId } from '../plugins/index.js'
import { messageTemplate } from '../plugins/message.js'
import { historyStoreSuite, TestClock } from './abstract/history-store.js'

t.test('the memory store', async (t) => {
  historyStoreSuite(t, async (t, now) => {
    const store = new MemoryHistoryStore({ now })
    t.teardown(() => store.close())
    return store
  })
})

const bounds = { size: 10, ttl: 60 }

t.test('sweeping drops expired messages and forgets a topic idle for longer than metaTtl', async (t) => {
  const clock = new TestClock()
  const store = new MemoryHistoryStore({ now: clock.now, metaTtl: 600 })
  t.teardown(() => store.close())
  const last = await store.append('a', messageTemplate('s', 1), bounds)
  await store.append('b', messageTemplate('s', 2), { size: 10, ttl: 3600 })
  clock.advance(120)
  store.sweep()
  t.equal(store.topicCount, 2, 'the latest id outlives the message')
  t.same(await store.read('a', last.id, bounds, 10), [], 'so a client that saw it resumes without a gap')
  clock.advance(600)
  store.sweep()
  t.equal(store.topicCount, 1, 'a is forgotten; b still holds a message')
  t.equal(await store.read('a', last.id, bounds, 10), null)
})

t.test('sweeps on a timer that close() stops', async (t) => {
  const clock = new TestClock()
  const store = new MemoryHistoryStore({ now: clock.now, metaTtl: 1, sweepInterval: 5 })
  await store.append('a', messageTemplate('s', 1), bounds)
  clock.advance(120)
  while (store.topicCount > 0) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(store.topicCount, 0)
  await store.close()
  await store.close()
  await store.append('a', messageTemplate('s', 2), bounds)
  t.equal(store.topicCount, 1, 'still usable after close, without a sweep timer')
})

t.test('rejects bad options with a coded error', async (t) => {
  t.throws(() => new MemoryHistoryStore({ metaTtl: 0 }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  t.throws(() => new MemoryHistoryStore({ sweepInterval: 1.5 }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  t.throws(() => new MemoryHistoryStore({ now: 5 as unknown as () => number }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('message ids compare as the numbers they hold, over the whole 64-bit range', async (t) => {
  t.ok(compareMessageIds('9-0', '10-0') < 0)
  t.ok(compareMessageIds('10-2', '10-10') < 0)
  t.equal(compareMessageIds('18446744073709551615-7', '18446744073709551615-7'), 0)
  t.ok(compareMessageIds('18446744073709551615-1', '18446744073709551614-9') > 0)
  for (const id of [5, null, '1-', '-1', '1-0-0', '18446744073709551616-0']) t.notOk(isMessageId(id), String(id))
  t.ok(isMessageId('18446744073709551615-18446744073709551615'))
})
