import t from 'tap'
import mqemitter from 'mqemitter'
import { API_KEY, build, connect, connectUser, publish, type Edge } from './helpers.js'
import { logCapture } from './log-capture.js'
import { until } from './redis-server.js'

const data = { orderId: '1', status: 'placed' }

async function presence (edge: Edge, query: string, key = API_KEY): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${edge.http}/presence?${query}`, { headers: { 'x-api-key': key } })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

t.test('counts connections and streams per user, and a public stream\'s audience, anonymous included', async (t) => {
  const edge = await build(t)
  const [a1, a2, bob] = await Promise.all([connectUser(t, edge, 'alice'), connectUser(t, edge, 'alice'), connectUser(t, edge, 'bob')])
  const { client: anonymous } = await connect(t, `${edge.ws}/public`)
  await a1.subscribe('order', 'promotional')
  await a2.subscribe('promotional')
  await anonymous.subscribe('promotional')

  t.same((await presence(edge, 'user=alice&user=bob&user=carol')).body, {
    users: {
      alice: { connections: 2, streams: ['order', 'promotional'] },
      bob: { connections: 1, streams: [] },
      carol: { connections: 0, streams: [] }
    }
  })
  t.same((await presence(edge, 'stream=promotional')).body, { stream: 'promotional', connections: 3, users: 1 },
    'alice counts once, the anonymous connection counts as a connection only')
  t.same(await edge.app.notify.presence({ user: 'alice' }), { users: { alice: { connections: 2, streams: ['order', 'promotional'] } } })
  t.same(await edge.app.notify.presence({ stream: 'system' }), { stream: 'system', connections: 0, users: 0 })

  await a1.request({ event: 'unsubscribe', streams: ['order'] }, 'unsubscribed')
  t.same((await edge.app.notify.presence({ user: 'alice' })).users.alice.streams, ['promotional'])
  a2.socket.terminate()
  await bob.close()
  await until('the closed sockets to be counted out', async () =>
    (await edge.app.notify.presence({ stream: 'promotional' })).connections === 2)
  t.same(await edge.app.notify.presence({ users: ['alice', 'bob', 'alice'] }), {
    users: { alice: { connections: 1, streams: ['promotional'] }, bob: { connections: 0, streams: [] } }
  })
  t.same(await edge.app.notify.presence({ stream: 'promotional' }), { stream: 'promotional', connections: 2, users: 1 })
})

t.test('the in-process store keeps nothing of a user who left: no change log that nothing drains', async (t) => {
  const edge = await build(t)
  for (const user of ['alice', 'bob']) {
    const client = await connectUser(t, edge, user)
    await client.subscribe('order', 'promotional')
    await client.close()
  }
  const { tracker } = edge.app.notifyPresence as unknown as { tracker: import('../plugins/presence/index.js').PresenceTracker }
  await until('both to be counted out', async () => tracker.users.size === 0 && tracker.streams.size === 0)
  const changes = tracker.drain()
  t.same([changes.users.size, changes.streams.size, changes.members.size], [0, 0, 0], 'no user name, stream or membership kept')
})

t.test('GET /presence refuses a bad query with a coded 400, and a missing key with 401', async (t) => {
  const edge = await build(t)
  const cases: Array<[string, string, string]> = [
    ['no parameter', '', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['user and stream', 'user=alice&stream=promotional', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['two streams', 'stream=promotional&stream=system', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['a private stream', 'stream=order', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['an unknown stream', 'stream=nope', 'FST_NOTIFY_UNKNOWN_STREAM'],
    ['an empty user', 'user=', 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['a user over 256 characters', `user=${'u'.repeat(257)}`, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['more than maxUsersPerPublish users', Array.from({ length: 1001 }, (_, i) => `user=u${i}`).join('&'), 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['an unknown parameter', 'user=alice&verbose=1', 'FST_NOTIFY_BAD_PRESENCE_QUERY']
  ]
  for (const [what, query, code] of cases) {
    const res = await presence(edge, query)
    t.equal(res.status, 400, what)
    t.equal(res.body.code, code, what)
  }
  const unauthorized = await presence(edge, 'user=alice', 'wrong-key-0123456789')
  t.equal(unauthorized.status, 401)
  t.equal(unauthorized.body.code, 'FST_NOTIFY_BAD_API_KEY')
})

t.test('app.notify.presence() refuses a bad query with the same codes', async (t) => {
  const edge = await build(t)
  const presenceOf = edge.app.notify.presence as (query: unknown) => Promise<unknown>
  const cases: Array<[string, unknown, string]> = [
    ['null', null, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['an array', [], 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['an empty object', {}, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['user and users', { user: 'a', users: ['b'] }, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['users that is not an array', { users: 'alice' }, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['an empty users array', { users: [] }, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['a user that is not a string', { user: 7 }, 'FST_NOTIFY_BAD_PRESENCE_QUERY'],
    ['a stream that is not a string', { stream: 7 }, 'FST_NOTIFY_UNKNOWN_STREAM']
  ]
  for (const [what, query, code] of cases) await t.rejects(presenceOf(query), { code, statusCode: 400 }, what)
})

t.test('presence: false leaves presence out: 501 in-process, no route', async (t) => {
  const edge = await build(t, { presence: false })
  await t.rejects(edge.app.notify.presence({ user: 'alice' }), { code: 'FST_NOTIFY_PRESENCE_DISABLED', statusCode: 501 })
  t.equal((await presence(edge, 'user=alice')).status, 404)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  t.same((await publish(edge.http, { stream: 'order', user: 'alice', data })).body.online, true, 'the publish outcome comes from the bus')
})

t.test('refuses a presence store that is not one', async (t) => {
  const { registrationError } = await import('./helpers.js')
  t.equal((await registrationError({ presence: { store: {} } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ onOffline: 'email' }))?.code, 'FST_NOTIFY_INVALID_OPTION')
})

t.test('a private publish says who was online, offline or half-online, and hands the offline to onOffline', async (t) => {
  const offline: Array<[string[], Record<string, unknown>]> = []
  const edge = await build(t, { onOffline: (users, message) => { offline.push([users, { ...message }]) } })
  const [alice, bob] = await Promise.all([connectUser(t, edge, 'alice'), connectUser(t, edge, 'bob')])
  await alice.subscribe('order')
  await bob.subscribe('promotional')

  const online = await publish(edge.http, { stream: 'order', user: 'alice', data })
  t.same(online.body, { id: online.body.id, online: true })
  const away = await publish(edge.http, { stream: 'order', user: 'bob', data })
  t.same(away.body, { id: away.body.id, online: false }, 'connected, but not subscribed to order: not reached live')
  const half = await edge.app.notify.publish({ stream: 'order', users: ['alice', 'bob', 'carol'], data })
  t.same(half, { ids: (half as { ids: string[] }).ids, offline: ['bob', 'carol'] })
  const all = await edge.app.notify.publish({ stream: 'order', users: ['alice'], data })
  t.same(all, { ids: (all as { ids: string[] }).ids, offline: [] })
  t.same(offline, [
    [['bob'], { stream: 'order', data, ids: [away.body.id] }],
    [['bob', 'carol'], { stream: 'order', data, ids: (half as { ids: string[] }).ids.slice(1) }]
  ])

  await alice.request({ event: 'unsubscribe', streams: ['order'] }, 'unsubscribed')
  t.equal((await publish(edge.http, { stream: 'order', user: 'alice', data })).body.online, false, 'offline once unsubscribed')
})

t.test('an onOffline that throws or rejects is logged and leaves the publish alone', async (t) => {
  const log = logCapture()
  let calls = 0
  const edge = await build(t, {
    onOffline: async () => {
      if (++calls === 1) throw new Error('mail queue down')
    }
  }, { logger: { stream: log.stream } })
  t.equal((await publish(edge.http, { stream: 'order', user: 'alice', data })).status, 202)
  await log.next('notify onOffline hook failed')
  const syncLog = logCapture()
  const sync = await build(t, { onOffline: () => { throw new Error('sync bug') } }, { logger: { stream: syncLog.stream } })
  t.equal((await publish(sync.http, { stream: 'order', user: 'alice', data })).status, 202)
  t.match((await syncLog.next('notify onOffline hook failed')).err, { message: 'sync bug' })
})

t.test('with a given emitter the bus cannot tell who is online: the outcome is left out and onOffline not called', async (t) => {
  let called = false
  const edge = await build(t, { bus: { emitter: mqemitter(), closeEmitter: true }, onOffline: () => { called = true } })
  t.same(Object.keys((await publish(edge.http, { stream: 'order', user: 'alice', data })).body), ['id'])
  t.same(Object.keys(await edge.app.notify.publish({ stream: 'order', users: ['alice'], data })), ['ids'])
  t.equal(called, false)
})
