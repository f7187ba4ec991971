// Presence per channel key (SPEC section 12): counts for any channel, and for a channel that
// declares member presence its members and join / leave frames, once per user across all their
// connections and instances. SIGKILL of an instance: example-app-channels.test.ts.
import t from 'tap'
import type { StreamDefinition } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, build, connect, connectUser, type Client, type Edge } from './helpers.js'
import { redisServer, until } from './redis-server.js'
import { publisherApp } from './split-helpers.js'

const CHANNELS: StreamDefinition[] = [
  ...STREAMS.filter((stream) => stream.kind !== 'channel'),
  { name: 'room', kind: 'channel', openAccess: true, members: true, anonymous: true },
  { name: 'ticker', kind: 'channel', openAccess: true, anonymous: true }
]

async function presence (edge: Edge, query: string): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${edge.http}/presence?${query}`, { headers: { 'x-api-key': API_KEY } })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

/** Frames of `event` received so far, after a ping's round trip. */
async function seen (client: Client, event: string): Promise<Array<Record<string, any>>> {
  await client.request({ event: 'ping' }, 'pong')
  return client.frames.filter((f) => f.event === event)
}

t.test('GET /presence?stream=<channel>&key=<key>: counts for any channel, members where declared', async (t) => {
  const edge = await build(t)
  t.equal((await presence(edge, 'stream=nope&key=lobby')).body.code, 'FST_NOTIFY_UNKNOWN_STREAM')
  const withChannels = await build(t, { streams: CHANNELS })
  const [alice, bob, alice2] = [await connectUser(t, withChannels, 'alice'), await connectUser(t, withChannels, 'bob'), await connectUser(t, withChannels, 'alice')]
  const { client: anonymous } = await connect(t, `${withChannels.ws}/public`)
  for (const c of [alice, bob, alice2, anonymous]) await c.subscribe('room:lobby', 'ticker:ACME')
  await bob.subscribe('room:kitchen')
  t.same((await presence(withChannels, 'stream=room&key=lobby')).body, { stream: 'room', key: 'lobby', connections: 4, users: 2, members: ['alice', 'bob'] })
  t.same((await presence(withChannels, 'stream=ticker&key=ACME')).body, { stream: 'ticker', key: 'ACME', connections: 4, users: 2 }, 'counts only')
  t.same((await presence(withChannels, 'stream=room&key=nobody')).body, { stream: 'room', key: 'nobody', connections: 0, users: 0, members: [] })
  t.same((await withChannels.app.notify.presence({ stream: 'room', key: 'kitchen' })).members, ['bob'], 'in-process too')
  const { app: remote } = await publisherApp(t, { streams: CHANNELS, http: { url: withChannels.http, apiKey: API_KEY } })
  t.same(await remote.notify.presence({ stream: 'room', key: 'lobby' }), { stream: 'room', key: 'lobby', connections: 4, users: 2, members: ['alice', 'bob'] },
    'and from a publisher over HTTP')
  t.same(await remote.notify.presence({ stream: 'ticker', key: 'ACME' }), { stream: 'ticker', key: 'ACME', connections: 4, users: 2 })
  await t.rejects(remote.notify.presence({ stream: 'room' }), { code: 'FST_NOTIFY_BAD_PRESENCE_QUERY' }, 'checked before it travels')
  const users = await presence(withChannels, 'user=bob')
  t.same(users.body.users.bob.streams, ['room:kitchen', 'room:lobby', 'ticker:ACME'], 'a user\'s channels, in full')
  for (const [query, code] of [
    ['stream=room', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['stream=room&key=a%2Fb', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['stream=promotional&key=x', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['user=bob&key=x', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['stream=room&key=a&key=b', 'FST_NOTIFY_BAD_PRESENCE_QUERY']
  ]) {
    const res = await presence(withChannels, query)
    t.same([res.status, res.body.code], [400, code], query)
  }
  await alice.close()
  await alice2.close()
  await until('alice to leave', async () => (await presence(withChannels, 'stream=room&key=lobby')).body.users === 1)
  t.same((await presence(withChannels, 'stream=room&key=lobby')).body.members, ['bob'])
})

t.test('join and leave once per user, not per connection, to the key\'s subscribers only', async (t) => {
  const edge = await build(t, { streams: CHANNELS })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('room:lobby')
  const elsewhere = await connectUser(t, edge, 'carol')
  await elsewhere.subscribe('room:kitchen', 'ticker:lobby')
  const bob1 = await connectUser(t, edge, 'bob')
  await bob1.subscribe('room:lobby')
  t.same(await alice.event('join'), { event: 'join', stream: 'room:lobby', user: 'bob' })
  const bob2 = await connectUser(t, edge, 'bob')
  await bob2.subscribe('room:lobby')
  await bob1.request({ event: 'unsubscribe', streams: ['room:lobby'] }, 'unsubscribed')
  t.same(await seen(alice, 'join'), [], 'a second connection of bob joins nobody again')
  t.same(await seen(alice, 'leave'), [], 'nor does one of two leaving')
  await bob2.close()
  t.same(await alice.event('leave'), { event: 'leave', stream: 'room:lobby', user: 'bob' })
  const { client: anonymous } = await connect(t, `${edge.ws}/public`)
  await anonymous.subscribe('room:lobby')
  t.same(await seen(alice, 'join'), [], 'an anonymous socket is no member')
  t.same([...await seen(elsewhere, 'join'), ...await seen(elsewhere, 'leave')], [], 'another key, a channel without members: nothing')
})

t.test('join and leave across two instances on Redis, once per user, with churn', async (t) => {
  const server = await redisServer(t)
  const opts = { streams: CHANNELS, redis: server.url, presence: { heartbeatInterval: 200, ttl: 1000 }, routes: [{ path: '/ws', membersSweepInterval: 300 }] }
  const [a, b] = await Promise.all([build(t, opts), build(t, opts)])
  const alice = await connectUser(t, a, 'alice')
  await alice.subscribe('room:lobby')
  const onB = await connectUser(t, b, 'bob')
  await onB.subscribe('room:lobby')
  t.same(await alice.event('join'), { event: 'join', stream: 'room:lobby', user: 'bob' }, 'bob joined on B: alice on A hears it')
  t.same((await b.app.notify.presence({ stream: 'room', key: 'lobby' })).members, ['alice', 'bob'])

  // Churn: bob comes and goes on A while his socket on B stays: he never left.
  for (let i = 0; i < 5; i++) {
    const churn = await connectUser(t, a, 'bob')
    await churn.subscribe('room:lobby')
    await churn.close()
  }
  const dave = await connectUser(t, b, 'dave')
  await dave.subscribe('room:lobby')
  t.same(await alice.event('join'), { event: 'join', stream: 'room:lobby', user: 'dave' })
  t.same(await onB.event('join'), { event: 'join', stream: 'room:lobby', user: 'dave' })
  await new Promise((resolve) => setTimeout(resolve, 700))
  t.same((await seen(alice, 'join')).map((f) => f.user), [], 'bob\'s churn on A announced nothing')
  t.same((await seen(alice, 'leave')).map((f) => f.user), [])

  await onB.close()
  t.same(await alice.event('leave'), { event: 'leave', stream: 'room:lobby', user: 'bob' })
  t.same(await dave.event('leave'), { event: 'leave', stream: 'room:lobby', user: 'bob' })
  await new Promise((resolve) => setTimeout(resolve, 700))
  t.same([...await seen(alice, 'leave'), ...await seen(dave, 'leave')], [], 'once')
})
