import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Type } from 'typebox'
import { defineStreams, type ClientPublishHook } from '../plugins/index.js'
import { build, connect, connectUser, countTcpWrites, publish, type Client, type Frame } from './helpers.js'

const moderate: ClientPublishHook = async (principal, target, data) => {
  await sleep(Math.random() * 3)
  const text = (data as { text?: unknown }).text
  if (principal.user === 'mallory') return { allow: false, reason: 'muted', message: 'you are muted' }
  if (text === 'shout') return { allow: true, data: { text: 'SHOUT', by: principal.user, stream: target.stream } }
  if (text === 'boom') throw new Error('hook bug')
  if (text === 'never') return new Promise(() => {})
  if (text === 'nonsense') return 'yes' as unknown as boolean
  return true
}

const streams = defineStreams([
  { name: 'chat', kind: 'public', clientPublish: true, history: { size: 100, ttl: 60 } },
  { name: 'moderated', kind: 'public', clientPublish: moderate },
  { name: 'typed', kind: 'public', clientPublish: true, schema: Type.Object({ n: Type.Number() }) },
  { name: 'staff', kind: 'public', clientPublish: true, authorize: (principal) => principal.user === 'alice' },
  { name: 'fragile', kind: 'public', clientPublish: true, authorize: () => { throw new Error('authorize bug') } },
  { name: 'news', kind: 'public' },
  { name: 'order', kind: 'private' }
])

async function edgeWith (t: Parameters<typeof build>[0], upstream = {}) {
  return build(t, { streams, upstream: { hookTimeout: 200, ...upstream } })
}

const send = async (client: Client, frame: Frame): Promise<Frame> => {
  const id = `p${Math.random().toString(36).slice(2)}`
  client.send({ event: 'publish', ...frame, id })
  return client.next((f) => f.id === id && (f.event === 'published' || f.event === 'error'))
}

t.test('a client publish goes through the publish path and reaches subscribers with a server-set from', async (t) => {
  const edge = await edgeWith(t)
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  await bob.subscribe('chat')
  // The HTTP publish of the same stream carries no from.
  const server = await publish(edge.http, { stream: 'chat', data: { text: 'server' } })
  t.notOk('from' in await bob.event('message'))
  const answer = await send(alice, { stream: 'chat', data: { text: 'hi' } })
  t.equal(answer.event, 'published')
  t.equal(answer.stream, 'chat')
  const message = await bob.event('message')
  t.same([message.stream, message.from, message.data, message.id], ['chat', 'alice', { text: 'hi' }, answer.message])
  // History keeps the from: a resume replays the frame as it was.
  const late = await connectUser(t, edge, 'carol')
  await late.subscribe({ stream: 'chat', since: server.body.id as string })
  const replayed = await late.event('message')
  t.same([replayed.id, replayed.from], [answer.message, 'alice'])
})

t.test("a subscriber's own publish reaches it before its published, both in one write", async (t) => {
  const edge = await edgeWith(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('chat')
  const writes = countTcpWrites(edge.app)
  alice.send({ event: 'publish', stream: 'chat', data: { text: 'me' }, id: 'own' })
  const first = await alice.next((f) => f.event === 'message' || f.event === 'published')
  const second = await alice.next((f) => f.event === 'message' || f.event === 'published')
  t.same([first.event, second.event], ['message', 'published'])
  t.equal(first.id, second.message)
  t.equal(first.from, 'alice')
  t.equal(writes(), 1)
})

t.test('refused publishes answer coded errors and never reach a subscriber', async (t) => {
  const edge = await edgeWith(t)
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  await bob.subscribe('chat', 'news', 'moderated', 'typed')
  const code = async (frame: Frame): Promise<string> => (await send(alice, frame)).code
  t.equal(await code({ stream: 'chat', data: {}, from: 'bob' }), 'BAD_REQUEST', 'a forged from is refused')
  t.equal(await code({ stream: 'news', data: {} }), 'FORBIDDEN', 'a stream without clientPublish')
  t.equal(await code({ stream: 'order', data: {} }), 'FORBIDDEN', 'a private stream')
  t.equal(await code({ stream: 'nope', data: {} }), 'UNKNOWN_STREAM')
  t.equal(await code({ stream: 'chat' }), 'BAD_REQUEST', 'no data')
  t.equal(await code({ stream: 7, data: {} }), 'BAD_REQUEST', 'stream not a string')
  t.equal(await code({ stream: 'chat:lobby', data: {} }), 'BAD_REQUEST', 'a key on a stream that is not a channel')
  t.equal(await code({ stream: 'typed', data: { n: 'x' } }), 'BAD_REQUEST', 'the schema applies')
  t.equal(await code({ stream: 'chat', data: {}, idempotencyKey: 5 }), 'BAD_REQUEST')
  t.equal(await code({ stream: 'chat', data: {}, idempotencyKey: '\u0001' }), 'BAD_REQUEST')
  t.equal(await code({ stream: 'chat', data: { text: 'x'.repeat(20_000) } }), 'BAD_REQUEST', 'over the size limit')
  const mallory = await connectUser(t, edge, 'mallory')
  const denied = await send(mallory, { stream: 'moderated', data: { text: 'hi' } })
  t.same([denied.code, denied.reason, denied.message], ['FORBIDDEN', 'muted', 'you are muted'])
  t.equal((await send(mallory, { stream: 'staff', data: {} })).code, 'FORBIDDEN', 'authorize applies to publishing')
  t.equal((await send(mallory, { stream: 'fragile', data: {} })).code, 'FORBIDDEN', 'an authorize that throws refuses')
  t.equal(await code({ stream: 'moderated', data: { text: 'boom' } }), 'FORBIDDEN', 'a hook that throws refuses')
  t.equal(await code({ stream: 'moderated', data: { text: 'nonsense' } }), 'FORBIDDEN', 'no verdict refuses')
  t.equal(await code({ stream: 'moderated', data: { text: 'never' } }), 'TIMEOUT', 'a hook that never answers times out')
  const anonymous = (await connect(t, `${edge.ws}/public`)).client
  t.equal((await send(anonymous, { stream: 'chat', data: {} })).code, 'FORBIDDEN', 'anonymous')
  // Everything refused: bob got nothing; the allowed publish after them is the first he sees.
  t.equal((await send(alice, { stream: 'staff', data: { ok: 0 } })).event, 'published', 'alice may')
  t.equal((await send(alice, { stream: 'chat', data: { ok: 1 } })).event, 'published')
  const first = await bob.event('message')
  t.same([first.stream, first.data], ['chat', { ok: 1 }])
  t.same(bob.messages(), [])
})

t.test('a hook replaces the data', async (t) => {
  const edge = await edgeWith(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('moderated')
  t.equal((await send(alice, { stream: 'moderated', data: { text: 'shout' } })).event, 'published')
  const message = await alice.event('message')
  t.same(message.data, { text: 'SHOUT', by: 'alice', stream: 'moderated' })
  t.equal(message.from, 'alice')
})

t.test('per-connection and per-user rate limits answer RATE_LIMITED', async (t) => {
  const edge = await edgeWith(t, { publishRate: { perSecond: 1, burst: 2 }, userPublishRate: { perSecond: 1, burst: 3 } })
  const a1 = await connectUser(t, edge, 'alice')
  const a2 = await connectUser(t, edge, 'alice')
  const events = []
  for (let i = 0; i < 3; i++) events.push((await send(a1, { stream: 'chat', data: i })).event)
  t.same(events, ['published', 'published', 'error'])
  t.equal((await send(a2, { stream: 'chat', data: 3 })).event, 'published', 'the user has one more')
  const limited = await send(a2, { stream: 'chat', data: 4 })
  t.equal(limited.code, 'RATE_LIMITED', 'then the user is limited, whatever the connection')
  const bob = await connectUser(t, edge, 'bob')
  t.equal((await send(bob, { stream: 'chat', data: 5 })).event, 'published', 'another user is not')
})

t.test('an idempotency key publishes once per user', async (t) => {
  const edge = await edgeWith(t)
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  await bob.subscribe('chat')
  const first = await send(alice, { stream: 'chat', data: 1, idempotencyKey: 'k1' })
  const again = await send(alice, { stream: 'chat', data: 1, idempotencyKey: 'k1' })
  t.equal(again.message, first.message)
  t.equal(again.replayed, true)
  const other = await send(bob, { stream: 'chat', data: 2, idempotencyKey: 'k1' })
  t.not(other.message, first.message, 'another user\'s key is another key')
  const seen = [await bob.event('message'), await bob.event('message')]
  t.same(seen.map((m) => m.data), [1, 2])
})

t.test('publishes from one socket arrive in the order sent, through an async hook', async (t) => {
  const edge = await edgeWith(t, { publishRate: { perSecond: 1000, burst: 1000 }, userPublishRate: { perSecond: 1000, burst: 1000 } })
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  await bob.subscribe('moderated')
  const count = 30
  for (let i = 0; i < count; i++) alice.send({ event: 'publish', stream: 'moderated', data: { text: `m${i}` }, id: i })
  const received: string[] = []
  for (let i = 0; i < count; i++) received.push((await bob.event('message')).data.text)
  t.same(received, Array.from({ length: count }, (_, i) => `m${i}`))
  const acks: number[] = []
  for (let i = 0; i < count; i++) acks.push((await alice.event('published')).id)
  t.same(acks, Array.from({ length: count }, (_, i) => i))
})

t.test('with upstream: false, publish and rpc frames are refused', async (t) => {
  const edge = await build(t, { streams, upstream: false })
  const alice = await connectUser(t, edge, 'alice')
  t.equal((await send(alice, { stream: 'chat', data: 1 })).code, 'FORBIDDEN')
  alice.send({ event: 'rpc', method: 'x', id: 'r' })
  t.equal((await alice.next((f) => f.id === 'r')).code, 'FORBIDDEN')
})
