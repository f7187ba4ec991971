// Channel streams (SPEC section 12): one topic per key, subscribed as `<stream>:<key>`, on the
// in-process bus. Redis, other instances and faults are in channels-redis.test.ts.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { ChannelTarget, Principal, StreamDefinition } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, connect, connectUser, publish, registrationError, type Client } from './helpers.js'
import { logCapture } from './log-capture.js'

const ROOM: StreamDefinition = { name: 'room', kind: 'channel', openAccess: true, history: { size: 100, ttl: 600 } }
const CHANNELS: StreamDefinition[] = [...STREAMS.filter((stream) => stream.kind !== 'channel'), ROOM]

async function nothingElse (client: Client): Promise<unknown[]> {
  await client.request({ event: 'ping' }, 'pong')
  return client.messages()
}

t.test('a channel is refused at registration without an authorize hook or an explicit open-access opt-in', async (t) => {
  const refused = async (stream: Record<string, unknown>): Promise<string | undefined> =>
    (await registrationError({ streams: [{ name: 'room', kind: 'channel', ...stream }] }))?.code
  t.equal(await refused({}), 'FST_NOTIFY_INVALID_OPTION', 'neither')
  t.equal(await refused({ openAccess: false }), 'FST_NOTIFY_INVALID_OPTION', 'openAccess false is no opt-in')
  t.equal(await refused({ openAccess: true, authorize: () => true }), 'FST_NOTIFY_INVALID_OPTION', 'both')
  t.equal(await refused({ openAccess: 'yes' }), 'FST_NOTIFY_INVALID_OPTION', 'not a boolean')
  t.equal(await refused({ openAccess: true, anonymous: 1 }), 'FST_NOTIFY_INVALID_OPTION')
  t.equal(await refused({ authorize: () => true, authorizeTimeout: 0 }), 'FST_NOTIFY_INVALID_OPTION')
  t.equal(await refused({ authorize: 'open' }), 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ streams: [{ name: 'news', kind: 'public', openAccess: true }] }))?.code, 'FST_NOTIFY_INVALID_OPTION',
    'only a channel takes its options')
  t.equal((await registrationError({ streams: [{ name: 'news', kind: 'topic' }] }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal(await refused({ authorize: () => true }), undefined, 'a hook')
  t.equal(await refused({ openAccess: true, anonymous: true, members: true }), undefined, 'open access')
})

t.test('a key\'s messages reach its subscribers only, named in full, with ids of their own', async (t) => {
  const edge = await build(t, { streams: CHANNELS })
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  t.same((await alice.subscribe('room:lobby')).streams, ['room:lobby'])
  await bob.subscribe('room:Lobby', 'room:kitchen')

  const toLobby = await publish(edge.http, { stream: 'room', key: 'lobby', data: { text: 'hi' } })
  t.equal(toLobby.status, 202)
  t.same(Object.keys(toLobby.body), ['id'])
  t.match(await alice.event('message'), { event: 'message', stream: 'room:lobby', id: toLobby.body.id, data: { text: 'hi' } })
  t.same(await nothingElse(bob), [], 'room:Lobby is another channel: keys are case-sensitive')

  const many = await edge.app.notify.publish({ stream: 'room', keys: ['lobby', 'Lobby', 'kitchen', 'empty'], data: { text: 'all' } })
  t.equal(many.ids.length, 4, 'one call, one id per key, in order')
  t.equal((await alice.event('message')).id, many.ids[0])
  const toBob = [await bob.event('message'), await bob.event('message')].sort((x, y) => x.stream < y.stream ? -1 : 1)
  t.same(toBob.map((m) => [m.stream, m.id]), [['room:Lobby', many.ids[1]], ['room:kitchen', many.ids[2]]])
  t.same(await nothingElse(alice), [])

  await alice.request({ event: 'unsubscribe', streams: ['room:lobby'] }, 'unsubscribed')
  await edge.app.notify.publish({ stream: 'room', key: 'lobby', data: { text: 'gone' } })
  t.same(await nothingElse(alice), [], 'nothing after unsubscribing')
  t.equal(edge.app.notifyBus.topicCount(), 2, 'the bus holds the two keys bob still wants, nothing else')
})

t.test('names that are not a channel key are refused per item, and the connection lives on', async (t) => {
  const edge = await build(t, { streams: CHANNELS })
  const alice = await connectUser(t, edge, 'alice')
  const atLimit = `room:${'k'.repeat(128)}`
  const overLimit = `room:${'k'.repeat(129)}`
  alice.send({ event: 'subscribe', streams: ['room', 'room:', overLimit, 'room:a/b', 'room:a:b', 'order:alice', 'nope:x', atLimit, 'room:AZaz09_@.=-'], id: 's' })
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: 'room', id: 's' }, 'a channel needs a key')
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: 'room:' })
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: overLimit }, '129 characters')
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: 'room:a/b' })
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: 'room:a:b' })
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: 'order:alice' }, 'a private stream takes no key')
  t.match(await alice.event('error'), { code: 'UNKNOWN_STREAM', stream: 'nope:x' })
  t.same((await alice.event('subscribed')).streams, [atLimit, 'room:AZaz09_@.=-'], '128 characters, every character the pattern allows')
  const res = await publish(edge.http, { stream: 'room', key: 'k'.repeat(128), data: 1 })
  t.equal((await alice.event('message')).id, res.body.id)
  alice.send({ event: 'unsubscribe', streams: ['room:a/b', 'room:AZaz09_@.=-'], id: 'u' })
  t.match(await alice.event('error'), { code: 'BAD_REQUEST', stream: 'room:a/b', id: 'u' })
  t.same((await alice.event('unsubscribed')).streams, ['room:AZaz09_@.=-'])
  t.equal(alice.closeCode, null)
})

t.test('keys that differ only by case or by what an escape would make of them never share messages', async (t) => {
  const keys = ['a', 'A', 'YQ', 'a.b', 'a_b', 'a-b', 'a=b', 'a@b', 'a..b', '.', '..', '=', 'cm9vbQ', 'a.', '.a', '-', '_', '@']
  const edge = await build(t, { streams: CHANNELS })
  const clients = await Promise.all(keys.map(async (key) => {
    const client = await connectUser(t, edge, `u-${key}`)
    await client.subscribe(`room:${key}`)
    return client
  }))
  const topics = new Set(keys.map((key) => edge.app.notify.streams.get('room')!.topic(key)))
  t.equal(topics.size, keys.length, 'one topic per key')
  for (const topic of topics) t.notMatch(topic, /[+#*\s]/, 'no wildcard on the bus')
  const { ids } = await edge.app.notify.publish({ stream: 'room', keys, data: { n: 1 } })
  for (const [i, client] of clients.entries()) {
    t.same((await client.event('message')).id, ids[i], keys[i])
    t.same(await nothingElse(client), [], `${keys[i]} gets its own only`)
  }
})

t.test('1,000 hostile names in one subscribe: none reaches another key or stream', async (t) => {
  const edge = await build(t, { streams: CHANNELS, routes: [{ path: '/ws', maxSubscriptions: 1000, frameRate: false }] })
  const bystander = await connectUser(t, edge, 'bob')
  await bystander.subscribe('room:lobby', 'promotional')
  const hostile = await connectUser(t, edge, 'mallory')
  const alphabet = 'lobby/+#*$%:.=@-_ \u00e9\u{1F600}\\"\'\0{}[]LOBBY'
  const names = Array.from({ length: 1000 }, (_, i) => {
    const bytes = randomBytes(i % 100 === 0 ? 130 + i / 10 : 1 + (i % 40))
    return `room:${[...bytes].map((b) => [...alphabet][b % [...alphabet].length]).join('')}`
  })
  hostile.send({ event: 'subscribe', streams: names, id: 'h' })
  const answer = await hostile.event('subscribed', 10_000)
  const refused = hostile.frames.filter((f) => f.event === 'error')
  t.ok(refused.every((f) => f.code === 'BAD_REQUEST'), 'every refusal is a BAD_REQUEST')
  const accepted = answer.streams as string[]
  const valid = names.filter((name) => /^room:[A-Za-z0-9_@.=-]{1,128}$/.test(name))
  t.ok(valid.length > 0 && valid.length < names.length, `${valid.length} of the names are valid keys`)
  t.same(new Set(accepted), new Set(valid), 'exactly the valid keys are accepted')
  t.equal(refused.length, names.length - valid.length, 'one error per other item')
  t.equal(edge.app.notifyBus.topicCount(), 2 + accepted.length, 'one topic per accepted key')
  t.notOk(accepted.includes('room:lobby'), 'the random list does not name the bystander\'s key')
  await edge.app.notify.publish({ stream: 'room', key: 'lobby', data: { to: 'lobby' } })
  await edge.app.notify.publish({ stream: 'promotional', data: { text: 'x' } })
  t.equal((await bystander.event('message')).stream, 'room:lobby')
  t.equal((await bystander.event('message')).stream, 'promotional')
  t.same(await nothingElse(hostile), [], 'nothing reached the hostile socket')
  if (accepted.length > 0) {
    await edge.app.notify.publish({ stream: 'room', keys: accepted.map((name) => name.slice(5)), data: { to: 'hostile' } })
    for (const name of new Set(accepted)) t.equal((await hostile.event('message')).data.to, 'hostile', name)
  }
  t.same(await nothingElse(bystander), [], 'the bystander got none of them')
  t.equal(hostile.closeCode, null)
})

t.test('authorization per key: allowed, refused, async, throwing, rejecting, slow, not exactly true; each item on its own', async (t) => {
  const seen: Array<[string | null, ChannelTarget]> = []
  const log = logCapture()
  const gated: StreamDefinition = {
    name: 'doc',
    kind: 'channel',
    authorizeTimeout: 200,
    authorize (principal: Principal, channel: ChannelTarget) {
      seen.push([principal.user, channel])
      switch (channel.key) {
        case 'yes': return true
        case 'no': return false
        case 'later': return new Promise((resolve) => setTimeout(resolve, 20, true))
        case 'throws': throw new Error('db down')
        case 'rejects': return Promise.reject(new Error('db down'))
        case 'slow': return new Promise((resolve) => setTimeout(resolve, 1000, true))
        default: return 1 as unknown as boolean
      }
    }
  }
  const edge = await build(t, { streams: [...STREAMS.filter((stream) => stream.kind !== 'channel'), gated] }, { logger: { stream: log.stream, level: 'warn' } })
  const alice = await connectUser(t, edge, 'alice')
  const started = Date.now()
  const keys = ['yes', 'no', 'later', 'throws', 'rejects', 'slow', 'truthy']
  alice.send({ event: 'subscribe', streams: keys.map((key) => `doc:${key}`), id: 'a' })
  const answer = await alice.event('subscribed')
  t.ok(Date.now() - started < 900, 'a slow hook costs its timeout, not its answer')
  t.same(answer.streams, ['doc:yes', 'doc:later'])
  const refused = alice.frames.filter((f) => f.event === 'error')
  t.same(refused.map((f) => [f.code, f.stream, f.id]), ['no', 'throws', 'rejects', 'slow', 'truthy'].map((key) => ['FORBIDDEN', `doc:${key}`, 'a']))
  t.same(seen, keys.map((key) => ['alice', { stream: 'doc', key }]), 'the hook sees the principal and the key')
  const failures = log.lines.filter((line) => /authorize hook (failed|timed out)/.test(line.msg))
  t.equal(failures.length, 3, 'a throw, a rejection and a timeout: logged once each')
  t.equal(alice.closeCode, null, 'the connection lives on')
  await new Promise((resolve) => setTimeout(resolve, 900))
  t.equal(log.lines.filter((line) => /authorize hook/.test(line.msg)).length, 3, 'the late answer is ignored')
  t.same((await alice.subscribe('doc:yes')).streams, ['doc:yes'], 'subscribing again is fine')
  t.equal(seen.length, keys.length, 'a key already held is not asked about again')
})

t.test('anonymous sockets reach only channels that allow them', async (t) => {
  const users: Array<string | null> = []
  const edge = await build(t, {
    streams: [
      ...STREAMS.filter((stream) => stream.kind !== 'channel'),
      ROOM,
      { name: 'ticker', kind: 'channel', anonymous: true, authorize: (principal, { key }) => { users.push(principal.user); return key !== 'secret' } }
    ]
  })
  const { client } = await connect(t, `${edge.ws}/public`)
  client.send({ event: 'subscribe', streams: ['room:lobby', 'ticker:ACME', 'ticker:secret'], id: 'p' })
  t.match(await client.event('error'), { code: 'FORBIDDEN', stream: 'room:lobby' })
  t.match(await client.event('error'), { code: 'FORBIDDEN', stream: 'ticker:secret' })
  t.same((await client.event('subscribed')).streams, ['ticker:ACME'])
  t.same(users, [null, null], 'the hook sees an anonymous principal')
  await edge.app.notify.publish({ stream: 'ticker', key: 'ACME', data: { price: 1 } })
  t.match(await client.event('message'), { stream: 'ticker:ACME', data: { price: 1 } })
})

t.test('publishing to keys over HTTP: coded 400s for what is off', async (t) => {
  const edge = await build(t, { streams: CHANNELS, maxUsersPerPublish: 3 })
  const status = async (body: unknown): Promise<[number, unknown]> => {
    const res = await publish(edge.http, body)
    return [res.status, res.body.code]
  }
  t.same(await status({ stream: 'room', data: 1 }), [400, 'FST_NOTIFY_KEY_REQUIRED'])
  t.same(await status({ stream: 'room', key: 'a', keys: ['b'], data: 1 }), [400, 'FST_NOTIFY_KEY_REQUIRED'])
  t.same(await status({ stream: 'promotional', key: 'a', data: 1 }), [400, 'FST_NOTIFY_KEY_NOT_ALLOWED'])
  t.same(await status({ stream: 'order', user: 'alice', keys: ['a'], data: { orderId: '1', status: 'x' } }), [400, 'FST_NOTIFY_KEY_NOT_ALLOWED'])
  t.same(await status({ stream: 'room', key: 'a/b', data: 1 }), [400, 'FST_NOTIFY_INVALID_KEY'])
  t.same(await status({ stream: 'room', key: 'k'.repeat(129), data: 1 }), [400, 'FST_NOTIFY_INVALID_KEY'])
  t.same(await status({ stream: 'room', keys: ['ok', 7], data: 1 }), [400, 'FST_NOTIFY_INVALID_KEY'])
  t.same(await status({ stream: 'room', keys: [], data: 1 }), [400, 'FST_NOTIFY_BAD_PUBLISH'])
  t.same(await status({ stream: 'room', keys: ['a', 'b', 'c', 'd'], data: 1 }), [400, 'FST_NOTIFY_BAD_PUBLISH'])
  t.same(await status({ stream: 'room', keys: 'a', data: 1 }), [400, 'FST_NOTIFY_BAD_PUBLISH'])
  t.same(await status({ stream: 'room', key: 'a', user: 'alice', data: 1 }), [400, 'FST_NOTIFY_BAD_PUBLISH'])
  t.same(await status({ stream: 'room', key: 'a' }), [400, 'FST_NOTIFY_DATA_REQUIRED'])
  const ok = await publish(edge.http, { stream: 'room', keys: ['a', 'b', 'a'], data: 1 })
  t.equal(ok.status, 202)
  t.same(Object.keys(ok.body), ['ids'])
  t.equal((ok.body.ids as string[]).length, 3)
})

t.test('history and resume per key: since replays that key only; an unknown since is a gap for that key', async (t) => {
  const edge = await build(t, { streams: CHANNELS })
  const a: string[] = []
  for (let n = 0; n < 4; n++) {
    a.push((await edge.app.notify.publish({ stream: 'room', key: 'a', data: { n } })).id)
    await edge.app.notify.publish({ stream: 'room', key: 'b', data: { n } })
  }
  const alice = await connectUser(t, edge, 'alice')
  const answer = await alice.subscribe({ stream: 'room:a', since: a[1] }, { stream: 'room:b', since: '1-0' })
  t.same(answer.gaps, ['room:b'])
  const replayed = [await alice.event('message'), await alice.event('message')]
  t.same(replayed.map((m) => [m.stream, m.id]), [['room:a', a[2]], ['room:a', a[3]]])
  t.same(await nothingElse(alice), [], 'room:b answered a gap: nothing replayed')
})

t.test('subscriptions to keys count toward maxSubscriptions', async (t) => {
  const edge = await build(t, { streams: CHANNELS, routes: [{ path: '/ws', maxSubscriptions: 2 }] })
  const alice = await connectUser(t, edge, 'alice')
  alice.send({ event: 'subscribe', streams: ['room:a', 'room:b'], id: 'x' })
  t.same((await alice.event('subscribed')).streams, ['room:a', 'room:b'])
  alice.send({ event: 'subscribe', streams: ['room:c'], id: 'y' })
  t.match(await alice.event('error'), { code: 'TOO_MANY_SUBSCRIPTIONS', stream: 'room:c' })
})
