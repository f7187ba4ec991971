// The per-user client publish limit across instances (userPublishRate.scope 'fleet'): one bucket
// per user in Redis, taken by whichever instance the publish lands on; a Redis that does not
// answer refuses the publish with UNAVAILABLE and the socket lives on.
import t, { type Test } from 'tap'
import { defineStreams } from '../plugins/index.js'
import { build, connectUser, registrationError, type Client, type Edge, type Frame } from './helpers.js'
import { redisServer } from './redis-server.js'

const streams = defineStreams([
  { name: 'chat', kind: 'public', clientPublish: true },
  { name: 'order', kind: 'private' }
])
const FLEET = { publishRate: { perSecond: 100, burst: 100 }, userPublishRate: { perSecond: 1, burst: 3, scope: 'fleet' as const } }

const send = async (client: Client, data: unknown): Promise<Frame> => {
  const id = `p${Math.random().toString(36).slice(2)}`
  client.send({ event: 'publish', stream: 'chat', data, id })
  return client.next((f) => f.id === id && (f.event === 'published' || f.event === 'error'))
}

async function pair (t: Test, upstream = {}): Promise<{ a: Edge, b: Edge, stop: () => Promise<void>, start: () => Promise<void> }> {
  const server = await redisServer(t)
  const [a, b] = await Promise.all([0, 1].map(async () => build(t, { streams, redis: server.url, upstream: { ...FLEET, ...upstream } })))
  return { a, b, stop: () => server.stop(), start: () => server.start() }
}

t.test('one user\'s budget is shared by their sockets on every instance; other users have their own', async (t) => {
  const { a, b } = await pair(t)
  const onA = await connectUser(t, a, 'alice')
  const onB = await connectUser(t, b, 'alice')
  const events = [(await send(onA, 1)).event, (await send(onB, 2)).event, (await send(onA, 3)).event]
  t.same(events, ['published', 'published', 'published'], 'the burst of 3, spent on two instances')
  const limited = await send(onB, 4)
  t.equal(limited.code, 'RATE_LIMITED', 'the fourth is refused on the instance that has not seen three')
  t.match(limited.message, /this user/)
  const bob = await connectUser(t, b, 'bob')
  t.equal((await send(bob, 5)).event, 'published', 'bob has his own budget')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await send(onB, 6)).event, 'published', 'a token comes back after a second, fleet-wide')
})

t.test('a refused publish spends nothing: a user at the limit gets one publish per second, no fewer', async (t) => {
  const { a } = await pair(t, { userPublishRate: { perSecond: 2, burst: 1, scope: 'fleet' } })
  const alice = await connectUser(t, a, 'alice')
  t.equal((await send(alice, 0)).event, 'published')
  for (let i = 0; i < 5; i++) t.equal((await send(alice, i)).code, 'RATE_LIMITED')
  await new Promise((resolve) => setTimeout(resolve, 550))
  t.equal((await send(alice, 9)).event, 'published', 'refusals did not push the bucket further out')
})

t.test('Redis gone: UNAVAILABLE within the timeout, the socket lives on, and publishing resumes with Redis', async (t) => {
  const { a, stop, start } = await pair(t)
  const alice = await connectUser(t, a, 'alice')
  t.equal((await send(alice, 1)).event, 'published')
  await stop()
  const started = Date.now()
  const refused = await send(alice, 2)
  t.equal(refused.code, 'UNAVAILABLE')
  t.ok(Date.now() - started < 3000, 'answered within the store timeout')
  await alice.request({ event: 'ping' }, 'pong')
  await start()
  let answer: Frame = refused
  for (let i = 0; i < 50 && answer.event !== 'published'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    answer = await send(alice, 3)
  }
  t.equal(answer.event, 'published', 'published again once Redis is back')
})

t.test('options are checked at registration', async (t) => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['an unknown scope', { streams, upstream: { userPublishRate: { scope: 'planet' } } }],
    ['fleet without Redis', { streams, upstream: { userPublishRate: { scope: 'fleet' } } }],
    ['an empty key prefix', { streams, upstream: { userPublishRate: { scope: 'fleet' }, rateStore: { client: { evalsha () {}, eval () {} }, keyPrefix: '' } } }],
    ['a bad timeout', { streams, upstream: { userPublishRate: { scope: 'fleet' }, rateStore: { client: { evalsha () {}, eval () {} }, timeout: -1 } } }]
  ]
  for (const [what, opts] of bad) t.equal((await registrationError(opts))?.code, 'FST_NOTIFY_INVALID_OPTION', what)
})
