import mqemitter, { type MQEmitter } from 'mqemitter'
import t from 'tap'
import type { PublishInput } from '../plugins/index.js'
import { API_KEY, build, connectUser, publish } from './helpers.js'

const data = { orderId: '1', status: 'placed' }

// Bodies that SPEC section 5 refuses, with the code they are refused with; the same rules
// hold over HTTP and in-process.
const REFUSED: Array<[string, unknown, string]> = [
  ['an unknown stream', { stream: 'nope', user: 'alice', data }, 'FST_NOTIFY_UNKNOWN_STREAM'],
  ['no stream', { user: 'alice', data }, 'FST_NOTIFY_UNKNOWN_STREAM'],
  ['a stream that is not a string', { stream: ['order'], user: 'alice', data }, 'FST_NOTIFY_UNKNOWN_STREAM'],
  ['a private stream without user or users', { stream: 'order', data }, 'FST_NOTIFY_USER_REQUIRED'],
  ['a private stream with both user and users', { stream: 'order', user: 'alice', users: ['bob'], data }, 'FST_NOTIFY_USER_REQUIRED'],
  ['a public stream with user', { stream: 'promotional', user: 'alice', data }, 'FST_NOTIFY_USER_NOT_ALLOWED'],
  ['a public stream with users', { stream: 'promotional', users: ['alice'], data }, 'FST_NOTIFY_USER_NOT_ALLOWED'],
  ['missing data', { stream: 'order', user: 'alice' }, 'FST_NOTIFY_DATA_REQUIRED'],
  ['data failing the stream schema', { stream: 'order', user: 'alice', data: { orderId: '1' } }, 'FST_NOTIFY_INVALID_DATA'],
  ['data of the wrong type for the schema', { stream: 'order', user: 'alice', data: 'placed' }, 'FST_NOTIFY_INVALID_DATA'],
  ['an empty user', { stream: 'order', user: '', data }, 'FST_NOTIFY_INVALID_USER'],
  ['a user that is not a string', { stream: 'order', user: 42, data }, 'FST_NOTIFY_INVALID_USER'],
  ['a user over 256 characters', { stream: 'order', user: 'u'.repeat(257), data }, 'FST_NOTIFY_INVALID_USER'],
  ['users holding a non-string', { stream: 'order', users: ['alice', null], data }, 'FST_NOTIFY_INVALID_USER'],
  ['users that is not an array', { stream: 'order', users: 'alice', data }, 'FST_NOTIFY_BAD_PUBLISH'],
  ['an empty users array', { stream: 'order', users: [], data }, 'FST_NOTIFY_BAD_PUBLISH'],
  ['more users than maxUsersPerPublish', { stream: 'order', users: Array.from({ length: 1001 }, (_, i) => `u${i}`), data }, 'FST_NOTIFY_BAD_PUBLISH'],
  ['an unexpected property', { stream: 'order', user: 'alice', data, priority: 'high' }, 'FST_NOTIFY_BAD_PUBLISH'],
  ['a JSON array', [{ stream: 'order', user: 'alice', data }], 'FST_NOTIFY_BAD_PUBLISH'],
  ['a JSON string', 'order', 'FST_NOTIFY_BAD_PUBLISH'],
  ['a JSON number', 42, 'FST_NOTIFY_BAD_PUBLISH'],
  ['JSON null', null, 'FST_NOTIFY_BAD_PUBLISH']
]

t.test('POST /notifications answers 202 with the id, the ids in order, or the public id', async (t) => {
  const edge = await build(t)
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((user) => connectUser(t, edge, user)))
  await alice.subscribe('order', 'promotional')
  await bob.subscribe('order', 'promotional')

  const one = await publish(edge.http, { stream: 'order', user: 'alice', data })
  t.equal(one.status, 202)
  t.same(Object.keys(one.body), ['id', 'online'])
  t.match(one.body.id, /^\d+-\d+$/)
  t.equal(one.body.online, true, 'alice has a socket subscribed to order')
  t.equal((await alice.event('message')).id, one.body.id)

  const many = await publish(edge.http, { stream: 'order', users: ['bob', 'alice'], data: { orderId: '2', status: 'paid' } })
  t.equal(many.status, 202)
  const ids = many.body.ids as string[]
  t.equal(ids.length, 2)
  t.same(many.body.offline, [], 'both are online')
  t.equal((await bob.event('message')).id, ids[0], 'ids follow the order of users')
  t.equal((await alice.event('message')).id, ids[1])

  const reward = await publish(edge.http, { stream: 'reward', user: 'alice', data: null })
  t.equal(reward.status, 202, 'null is data: only a missing data is refused')

  const pub = await publish(edge.http, { stream: 'promotional', data: { text: 'hi' } })
  t.equal(pub.status, 202)
  t.same(Object.keys(pub.body), ['id'], 'a public stream says nothing of who is online')
  for (const c of [alice, bob]) t.equal((await c.event('message')).id, pub.body.id)
})

t.test('POST /notifications answers 400 with a code for every body SPEC refuses', async (t) => {
  const edge = await build(t)
  for (const [what, body, code] of REFUSED) {
    const res = await publish(edge.http, body)
    t.equal(res.status, 400, what)
    t.equal(res.body.code, code, what)
  }
  t.equal(edge.app.notifyBus.topicCount(), 0)
})

t.test('a body over the limit answers 413, checked before it is parsed', async (t) => {
  const edge = await build(t, { publishApi: { apiKey: API_KEY, bodyLimit: 1024 } })
  const res = await publish(edge.http, { stream: 'promotional', data: { text: 'x'.repeat(2000) } })
  t.equal(res.status, 413)
  t.equal(res.body.code, 'FST_NOTIFY_PAYLOAD_TOO_LARGE')
  t.equal((await publish(edge.http, { stream: 'promotional', data: { text: 'x'.repeat(900) } })).status, 202, 'just under it is fine')

  const defaults = await build(t)
  const big = await publish(defaults.http, { stream: 'promotional', data: { text: 'x'.repeat(70_000) } })
  t.equal(big.status, 413)
  t.equal(big.body.code, 'FST_NOTIFY_PAYLOAD_TOO_LARGE', 'the default limit is 64 KiB')
})

t.test('a body that is not JSON is refused', async (t) => {
  const edge = await build(t)
  const post = (body: string, type = 'application/json'): Promise<Response> =>
    fetch(`${edge.http}/notifications`, { method: 'POST', headers: { 'content-type': type, 'x-api-key': API_KEY }, body })
  t.equal((await post('{"stream":')).status, 400, 'broken JSON')
  t.equal((await post('stream=order', 'application/x-www-form-urlencoded')).status, 415, 'not JSON at all')
})

t.test('a missing or wrong x-api-key answers 401', async (t) => {
  const edge = await build(t)
  const body = { stream: 'promotional', data: { text: 'hi' } }
  for (const [what, key] of [['missing', undefined], ['empty', ''], ['wrong', 'test-api-key-0123456780'], ['a prefix', API_KEY.slice(0, -1)], ['longer', `${API_KEY}0`]] as const) {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (key !== undefined) headers['x-api-key'] = key
    const res = await fetch(`${edge.http}/notifications`, { method: 'POST', headers, body: JSON.stringify(body) })
    t.equal(res.status, 401, what)
    t.equal(((await res.json()) as { code: string }).code, 'FST_NOTIFY_BAD_API_KEY', what)
  }
  const oversized = await publish(edge.http, { stream: 'promotional', data: 'x'.repeat(100_000) }, 'wrong-key-but-long-enough')
  t.equal(oversized.status, 401, 'the key is checked before the body')
})

t.test('every key of a rotation is accepted, on a configurable path', async (t) => {
  const keys = ['old-key-0123456789abcdef', 'new-key-0123456789abcdef']
  const edge = await build(t, { publishApi: { apiKey: keys, path: '/internal/notify' } })
  for (const key of keys) {
    const res = await fetch(`${edge.http}/internal/notify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({ stream: 'system', data: { text: 'maintenance' } })
    })
    t.equal(res.status, 202, key)
  }
})

t.test('app.notify.publish applies the same rules in-process', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const { id } = await edge.app.notify.publish({ stream: 'order', user: 'alice', data }) as { id: string }
  t.equal((await alice.event('message')).id, id)
  const { ids } = await edge.app.notify.publish({ stream: 'order', users: ['alice', 'bob'], data }) as { ids: string[] }
  t.equal(ids.length, 2)
  t.equal((await alice.event('message')).id, ids[0])

  for (const [what, body, code] of REFUSED) {
    await t.rejects(edge.app.notify.publish(body as PublishInput), { code, statusCode: 400 }, what)
  }
  await t.rejects(edge.app.notify.publish(undefined as unknown as PublishInput), { code: 'FST_NOTIFY_BAD_PUBLISH' })
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  const notJson: Array<[string, unknown]> = [['a function', () => 1], ['a BigInt', { n: 1n }], ['a cycle', cycle], ['a symbol', Symbol('s')]]
  for (const [what, value] of notJson) {
    await t.rejects(edge.app.notify.publish({ stream: 'reward', user: 'alice', data: value }), { code: 'FST_NOTIFY_INVALID_DATA' }, `${what} is not JSON`)
  }
})

/** An MQEmitter whose publishes never complete, like mqemitter-redis with Redis gone. */
function stalledEmitter (): MQEmitter {
  const real = mqemitter()
  return Object.assign(Object.create(real) as MQEmitter, { emit: () => real })
}

t.test('a bus that cannot publish answers 503 within the publish timeout, never a hang', async (t) => {
  const edge = await build(t, { bus: { emitter: stalledEmitter(), publishTimeout: 300 } })
  const started = Date.now()
  const res = await publish(edge.http, { stream: 'promotional', data: { text: 'hi' } })
  const elapsed = Date.now() - started
  t.equal(res.status, 503)
  // Handed to the emitter and never answered: it may still go out, so its outcome is unknown.
  t.equal(res.body.code, 'FST_NOTIFY_OUTCOME_UNKNOWN')
  t.ok(elapsed >= 290 && elapsed < 1000, `answered after ${elapsed} ms`)
  await t.rejects(edge.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_OUTCOME_UNKNOWN', statusCode: 503 })
})

t.test('a bus whose emitter reports an error answers 503', async (t) => {
  const emitter = mqemitter()
  await new Promise<void>((resolve) => emitter.close(() => resolve()))
  const edge = await build(t, { bus: { emitter } })
  const res = await publish(edge.http, { stream: 'promotional', data: { text: 'hi' } })
  t.equal(res.status, 503)
  t.equal(res.body.code, 'FST_NOTIFY_BUS_UNAVAILABLE')
})
