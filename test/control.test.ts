// Control on one instance (SPEC section 15): the admin API's key, each action through it and
// in-process, revocation at every place a credential is accepted, the streams claim.
import t from 'tap'
import { Writable } from 'node:stream'
import { API_KEY, build, connect, handshakeStatus, requestTicket, signJwt, claims, ticket, token, type Edge } from './helpers.js'
import { registrationError } from './helpers.js'
import { adminKeyId, MemoryRevocationStore, type Revocation } from '../plugins/index.js'
import { until } from './redis-server.js'

const ADMIN_KEY = 'admin-key-0123456789abcdef'

async function admin (edge: Edge, action: string, body: unknown, key: string | null = ADMIN_KEY): Promise<{ status: number, body: Record<string, any> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (key !== null) headers['x-api-key'] = key
  const res = await fetch(`${edge.http}/admin/${action}`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

/** A token for `sub` with a `jti` and an `iat` of our choosing. */
function tokenWith (sub: string, extra: Record<string, unknown> = {}): string {
  return signJwt({ ...claims(sub), jti: `j-${Math.random()}`, ...extra }, 'HS256')
}

function jtiOf (jwt: string): { jti: string, exp: number } {
  const { jti, exp } = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()) as { jti: string, exp: number }
  return { jti, exp }
}

t.test('the admin key: refused at registration when short, equal to the publish key, or missing', async (t) => {
  t.equal((await registrationError({ admin: { apiKey: 'short' } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ publishApi: { apiKey: API_KEY }, admin: { apiKey: API_KEY } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ publishApi: { apiKey: [API_KEY, 'another-key-0123456789'] }, admin: { apiKey: ['ok-admin-key-0123456789', 'another-key-0123456789'] } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ admin: { apiKey: ADMIN_KEY, prefix: 'admin' } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ control: { streamsClaim: '' } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ control: { store: {} as never } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ tickets: { keepClaims: [1] as never } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal(await registrationError({ admin: { apiKey: ADMIN_KEY } }), null)
})

t.test('no admin routes without an admin key; app.notify still controls', async (t) => {
  const edge = await build(t)
  t.equal((await admin(edge, 'disconnect', { user: 'alice' })).status, 404)
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  t.same(await edge.app.notify.disconnect({ user: 'alice' }), { instances: 1, connections: 1 })
  t.equal(await client.closed, 4003)
})

t.test('wrong, missing, short and publish keys: 401 and nothing done', async (t) => {
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY } })
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  for (const key of [null, 'wrong-key-0123456789abcdef', 'short', API_KEY, `${ADMIN_KEY}x`, '']) {
    for (const action of ['disconnect', 'revoke', 'subscribe', 'unsubscribe']) {
      const res = await admin(edge, action, { user: 'alice', before: Date.now(), streams: ['order'] }, key)
      t.equal(res.status, 401, `${action} with ${String(key)}`)
      t.equal(res.body.code, 'FST_NOTIFY_BAD_ADMIN_KEY')
    }
  }
  t.equal(edge.app.notifyRevocations.size, 0, 'nothing revoked')
  t.equal((await client.request({ event: 'ping' }, 'pong')).event, 'pong', 'the socket is untouched')
  t.equal(client.frames.length, 0, 'no frame was pushed to it')
})

t.test('bad admin requests: 400 with a code, nothing done', async (t) => {
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY } })
  const bad: Array<[string, unknown]> = [
    ['disconnect', {}], ['disconnect', { user: '' }], ['disconnect', []], ['disconnect', { user: 'a', extra: 1 }],
    ['revoke', { jti: 'x' }], ['revoke', { jti: 'x', exp: -1 }], ['revoke', { jti: '', exp: 2 }], ['revoke', { jti: 'x', exp: 2, user: 'a' }],
    ['revoke', { user: 'a' }], ['revoke', { user: 'a', before: 1.5 }], ['revoke', { user: 'a', before: 1, exp: 2 }],
    ['subscribe', { user: 'a', streams: [] }], ['subscribe', { user: 'a', streams: ['nope'] }], ['subscribe', { user: 'a', streams: [3] }],
    ['unsubscribe', { user: 'a', streams: 'order' }], ['subscribe', { user: 'a', streams: ['bad name!'] }]
  ]
  for (const [action, body] of bad) {
    const res = await admin(edge, action, body)
    t.equal(res.status, 400, `${action} ${JSON.stringify(body)}`)
    t.equal(res.body.code, 'FST_NOTIFY_BAD_ADMIN_REQUEST')
  }
  const res = await fetch(`${edge.http}/admin/disconnect`, { method: 'POST', headers: { 'x-api-key': ADMIN_KEY } })
  t.equal(res.status, 400, 'no body')
  t.equal(edge.app.notifyRevocations.size, 0)
})

t.test('disconnect closes every connection of the user with 4003, and no other; logged once with the key id', async (t) => {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done() } })
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY }, metrics: {} }, { logger: { level: 'info', stream } })
  const alice1 = (await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)).client
  const alice2 = (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, 'alice'))}`)).client
  const bob = (await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'bob')}`)).client
  const res = await admin(edge, 'disconnect', { user: 'alice' })
  t.same(res, { status: 200, body: { instances: 1, connections: 2 } })
  t.equal(await alice1.closed, 4003)
  t.equal(await alice2.closed, 4003)
  await bob.request({ event: 'ping', id: 1 }, 'pong')
  const audit = lines.filter((line) => line.control !== undefined)
  t.equal(audit.length, 1, 'one audit line')
  t.match(audit[0].control, { by: adminKeyId(ADMIN_KEY), action: 'disconnect', user: 'alice', instances: 1, connections: 2 })
  t.notOk(JSON.stringify(lines).includes(ADMIN_KEY), 'the key itself is never logged')
  const metrics = await (await fetch(`${edge.http}/metrics`)).text()
  t.match(metrics, /notify_edge_control_actions_total\{action="disconnect"\} 1/)
  t.match(metrics, /notify_edge_control_connections_touched_total\{action="disconnect"\} 2/)
})

t.test('revoke by jti: refused at the ticket route, the handshake (token and ticket) and refresh; its connections close', async (t) => {
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY } })
  const revoked = tokenWith('alice')
  const other = tokenWith('alice')
  const early = await ticket(edge.http, revoked)
  const open = (await connect(t, `${edge.ws}/ws?token=${revoked}`)).client
  const fromTicket = (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, revoked)}`)).client
  const survivor = (await connect(t, `${edge.ws}/ws?token=${other}`)).client
  const res = await admin(edge, 'revoke', jtiOf(revoked))
  t.same(res.body, { instances: 1, connections: 2 })
  t.equal(await open.closed, 4003)
  t.equal(await fromTicket.closed, 4003)
  t.equal((await requestTicket(edge.http, { authorization: `Bearer ${revoked}` })).status, 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${revoked}`), 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${early}`), 401, 'a ticket issued before the revocation')
  const refresh = await survivor.request({ event: 'refresh', token: revoked, id: 'r' }, 'error')
  t.equal(refresh.code, 'UNAUTHORIZED')
  t.equal((await survivor.request({ event: 'refresh', token: tokenWith('alice'), id: 'r2' }, 'refreshed')).event, 'refreshed')
  t.equal((await requestTicket(edge.http, { authorization: `Bearer ${other}` })).status, 200, 'another token of the user is fine')
})

t.test('revoke by user and time: tokens issued before are refused, later ones pass', async (t) => {
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY } })
  const now = Math.floor(Date.now() / 1000)
  const old = tokenWith('alice', { iat: now - 10 })
  const noIat = signJwt({ sub: 'alice', exp: now + 3600 }, 'HS256')
  const open = (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, old)}`)).client
  const bob = (await connect(t, `${edge.ws}/ws?token=${tokenWith('bob', { iat: now - 10 })}`)).client
  t.same((await edge.app.notify.revoke({ user: 'alice', before: (now - 5) * 1000 })), { instances: 1, connections: 1 })
  t.equal(await open.closed, 4003)
  t.equal((await requestTicket(edge.http, { authorization: `Bearer ${old}` })).status, 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${noIat}`), 401, 'no iat: cannot tell, refused')
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${tokenWith('alice', { iat: now })}`), 101, 'issued after')
  await bob.request({ event: 'ping', id: 1 }, 'pong')
  // A revocation of an expired token is kept no time at all.
  t.same(await edge.app.notify.revoke({ jti: 'gone', exp: now - 1 }), { instances: 1, connections: 0 })
  t.same((await edge.app.notify.revoke({ user: 'carol', before: 1000 }, { by: 'ops' })), { instances: 1, connections: 0 }, 'expired long ago')
  t.equal(edge.app.notifyRevocations.size, 1)
})

t.test('subscribe and unsubscribe every connection of a user, with the usual frames', async (t) => {
  const edge = await build(t, { admin: { apiKey: ADMIN_KEY } })
  const a = (await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)).client
  const b = (await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)).client
  const anonymous = (await connect(t, `${edge.ws}/public`)).client
  t.same((await admin(edge, 'subscribe', { user: 'alice', streams: ['order', 'promotional'] })).body, { instances: 1, connections: 2 })
  for (const client of [a, b]) t.same((await client.event('subscribed')).streams, ['order', 'promotional'])
  await edge.app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: 'o1', status: 'placed' } })
  t.equal((await a.event('message')).stream, 'order')
  t.equal((await b.event('message')).stream, 'order')
  t.same((await admin(edge, 'unsubscribe', { user: 'alice', streams: ['order'] })).body, { instances: 1, connections: 2 })
  t.same((await a.event('unsubscribed')).streams, ['order'])
  t.same((await b.event('unsubscribed')).streams, ['order'])
  await anonymous.request({ event: 'ping', id: 1 }, 'pong')
  t.equal(anonymous.frames.length, 0)
})

t.test('a streams claim subscribes a connection at connect, by token and by ticket', async (t) => {
  const edge = await build(t, { control: { streamsClaim: 'streams' } })
  const jwt = edge.app.jwt.sign({ sub: 'alice', streams: ['order', 'system', 7] })
  const byToken = (await connect(t, `${edge.ws}/ws?token=${jwt}`)).client
  t.same((await byToken.event('subscribed')).streams, ['order', 'system'])
  const byTicket = (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, jwt)}`)).client
  t.same((await byTicket.event('subscribed')).streams, ['order', 'system'])
  const none = (await connect(t, `${edge.ws}/ws?token=${edge.app.jwt.sign({ sub: 'bob', streams: 'order' })}`)).client
  await none.request({ event: 'ping', id: 1 }, 'pong')
  t.equal(none.frames.length, 0, 'a claim that is not a list subscribes nothing')
})

t.test('control: false leaves it out; app.notify\'s control methods answer 501', async (t) => {
  const edge = await build(t, { control: false })
  await t.rejects(edge.app.notify.disconnect({ user: 'alice' }), { code: 'FST_NOTIFY_CONTROL_DISABLED', statusCode: 501 })
  t.equal((await requestTicket(edge.http, { authorization: `Bearer ${token(edge.app, 'alice')}` })).status, 200)
})

t.test('on an emitter that cannot count receivers, an action waits replyTimeout for the answers that come', async (t) => {
  const { default: mqemitter } = await import('mqemitter')
  const edge = await build(t, { bus: { emitter: mqemitter(), closeEmitter: true }, control: { replyTimeout: 150 } })
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  const started = Date.now()
  t.same(await edge.app.notify.disconnect({ user: 'alice' }), { instances: 1, connections: 1 })
  t.ok(Date.now() - started >= 140, 'waited for more answers')
  t.equal(await client.closed, 4003)
  // Closing the app settles a wait in progress with what it has.
  const pending = edge.app.notify.disconnect({ user: 'bob' })
  await new Promise((resolve) => setImmediate(resolve))
  await edge.app.close()
  t.same(await pending, { instances: 1, connections: 0 })
})

t.test('a revocation list sync that fails at start is retried until the stored list is loaded', async (t) => {
  const stored = new MemoryRevocationStore()
  const jti = jtiOf(tokenWith('alice'))
  await stored.add({ jti: jti.jti, expiresAt: jti.exp * 1000 })
  let failures = 2
  let lists = 0
  const flaky = {
    add: async (revocation: Revocation) => await stored.add(revocation),
    async list () {
      lists++
      if (failures-- > 0) throw new Error('Redis is loading the dataset in memory')
      return await stored.list()
    }
  }
  const edge = await build(t, { control: { store: flaky } })
  await until('the list loaded at the third try', () => edge.app.notifyRevocations.size === 1, 5000)
  t.equal(lists, 3, 'tried once at start and twice more')
})
