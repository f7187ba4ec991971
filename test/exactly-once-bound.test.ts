import t from 'tap'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, connectUser } from './helpers.js'
import { crashEdges, CRASH_STREAMS, httpPublish, messagesOf, type Answer } from './crash-edge.js'
import { sharedRedis } from './redis-server.js'

t.setTimeout(180_000)

// The bound docs/reliability.md states for a stream without history: no record is written with
// the PUBLISH, so an edge SIGKILLed between its PUBLISH and storing the answer leaves only the
// pending marker, and a retry publishes again once it expired. test/exactly-once-crash.test.ts
// shows the same crash on a stream with history showing the message once.

t.test('a stream without history: an edge SIGKILLed between its PUBLISH and storing the answer shows that message twice, the copy a pending TTL later', async (t) => {
  const { url: redisUrl, prefix } = await sharedRedis(t)
  const pendingTtl = 2
  const { edges } = crashEdges(t, redisUrl, prefix, { CRASH_KEYS: 'ticker-3,order-3', PENDING_TTL: String(pendingTtl) })
  const first = await edges.start()
  const observer = await build(t, { redis: redisUrl, topicPrefix: prefix, streams: CRASH_STREAMS })
  const alice = await connectUser(t, observer, 'alice')
  await alice.subscribe('ticker', 'order')

  const answers: Answer[] = []
  const restarted = once(first.child, 'exit').then(() => edges.start())
  for (let seq = 0; seq < 6; seq++) answers.push(await httpPublish(edges, `ticker-${seq}`, { stream: 'ticker', data: { seq } }))
  const second = await restarted
  t.equal(first.child.signalCode, 'SIGKILL', 'the edge died on ticker-3')

  const seen = await messagesOf(alice, 'ticker', 7)
  t.same(seen.map((f) => f.data.seq), [0, 1, 2, 3, 3, 4, 5], 'ticker-3 twice, every other message once, in order')
  const [copy1, copy2] = seen.filter((f) => f.data.seq === 3)
  t.not(copy1.id, copy2.id, 'the second copy is a second publish, with its own id')
  t.equal(answers[3].id, copy2.id, 'the retry answers the second copy')
  t.notOk(answers[3].replayed, 'not as a replay: nothing recorded the first')
  t.ok(copy2.ts - copy1.ts >= pendingTtl * 1000 - 250, `the copy came once the pending marker expired (${copy2.ts - copy1.ts} ms later, pendingTtl ${pendingTtl} s)`)
  await sleep(300)
  t.same(alice.messages('ticker'), [], 'and nothing more')

  // The same crash on a stream with history: the retry answers the record, and nothing is shown twice.
  const restartedAgain = once(second.child, 'exit').then(() => edges.start())
  const data = (seq: number) => ({ orderId: String(seq), status: 'placed' })
  const orders: Answer[] = []
  for (let seq = 0; seq < 6; seq++) orders.push(await httpPublish(edges, `order-${seq}`, { stream: 'order', user: 'alice', data: data(seq) }))
  await restartedAgain
  t.equal(second.child.signalCode, 'SIGKILL', 'the edge died on order-3')
  const shown = await messagesOf(alice, 'order', 6)
  t.same(shown.map((f) => Number(f.data.orderId)), [0, 1, 2, 3, 4, 5], 'order-3 once')
  t.ok(orders[3].replayed && orders[3].id === shown[3].id, 'the retry answered the recorded id')
  await sleep(300)
  t.same(alice.messages('order'), [], 'and nothing more')
})
