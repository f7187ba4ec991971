import t from 'tap'
import { MemoryTicketStore, type TicketStore } from '../plugins/index.js'
import {
  build, claims, connect, handshake, handshakeStatus, publish, requestTicket, signJwt, ticket, token
} from './helpers.js'

t.test('a ticket taken with a JWT opens a socket that receives its user\'s messages', async (t) => {
  const edge = await build(t)
  const tenMinutes = claims('alice', 600)
  const jwt = signJwt(tenMinutes, 'HS256')
  const res = await requestTicket(edge.http, { authorization: `Bearer ${jwt}` })
  t.equal(res.status, 200)
  t.equal(res.body.expiresIn, 30)
  t.match(res.body.ticket, /^[A-Za-z0-9_-]{43}$/, '256 bits in base64url')

  const { client, welcome } = await connect(t, `${edge.ws}/ws?ticket=${res.body.ticket}`)
  t.equal(welcome.user, 'alice')
  t.equal(welcome.expiresAt, (tenMinutes.exp as number) * 1000, 'the connection expires with the JWT')
  await client.subscribe('order')
  const sent = await publish(edge.http, { stream: 'order', user: 'alice', data: { orderId: '1', status: 'placed' } })
  t.equal((await client.event('message')).id, sent.body.id)
})

t.test('a ticket request verifies its JWT once, for the rate limiter and the ticket both', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice')
  const verify = edge.app.jwt.verify
  let calls = 0
  edge.app.jwt.verify = ((...args: Parameters<typeof verify>) => {
    calls++
    return verify(...args)
  }) as typeof verify
  const issued = await ticket(edge.http, jwt)
  t.equal(calls, 1)
  t.equal((await connect(t, `${edge.ws}/ws?ticket=${issued}`)).welcome.user, 'alice')
})

t.test('every ticket is different', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice')
  const tickets = new Set(await Promise.all(Array.from({ length: 20 }, () => ticket(edge.http, jwt))))
  t.equal(tickets.size, 20)
  // Past the 128 tickets one draw of random bits serves, twice: no bytes are used again.
  const issued = await Promise.all(Array.from({ length: 300 }, async () => (await edge.app.notifyTickets.issue({ user: 'alice', expiresAt: Date.now() + 60_000 })).ticket))
  t.equal(new Set([...tickets, ...issued]).size, 320)
  t.ok(issued.every((ticket) => /^[A-Za-z0-9_-]{43}$/.test(ticket)), '256 bits each, in base64url')
})

t.test('the ticket lifetime follows the ttl option', async (t) => {
  const edge = await build(t, { tickets: { ttl: 5 } })
  const res = await requestTicket(edge.http, { authorization: `Bearer ${token(edge.app, 'alice')}` })
  t.equal(res.body.expiresIn, 5)
})

t.test('rejects a replayed ticket with 401', async (t) => {
  const edge = await build(t)
  const one = await ticket(edge.http, token(edge.app, 'alice'))
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`), 101)
  const again = await handshake(`${edge.ws}/ws?ticket=${one}`)
  t.equal(again.status, 401)
  t.equal(again.body?.code, 'FST_NOTIFY_UNAUTHORIZED')
})

t.test('rejects an expired ticket with 401', async (t) => {
  let now = Date.now()
  const store = new MemoryTicketStore({ now: () => now })
  const edge = await build(t, { tickets: { store, ttl: 30 } })
  const fresh = await ticket(edge.http, token(edge.app, 'alice'))
  const stale = await ticket(edge.http, token(edge.app, 'alice'))
  now += 29_999
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${fresh}`), 101, 'still valid just before the ttl')
  now += 1
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${stale}`), 401, 'expired at the ttl')
})

t.test('rejects a ticket whose JWT expired before it was redeemed', async (t) => {
  const edge = await build(t)
  const { ticket: late } = await edge.app.notifyTickets.issue({ user: 'alice', expiresAt: Date.now() - 1 })
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${late}`), 401)
})

t.test('rejects unknown and malformed tickets with 401', async (t) => {
  const edge = await build(t)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${'A'.repeat(43)}`), 401, 'well-formed but never issued')
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=short`), 401, 'wrong shape')
  t.equal(await edge.app.notifyTickets.redeem('x'.repeat(10_000)), null, 'not looked up at all')
})

t.test('a ticket is the credential when one is given: a bad ticket is not rescued by a token', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice')
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${'B'.repeat(43)}&token=${jwt}`), 401)
})

t.test('POST /ws/ticket answers 401 to a missing, malformed, forged or expired JWT', async (t) => {
  const edge = await build(t)
  const cases: Array<[string, Record<string, string>]> = [
    ['no Authorization header', {}],
    ['a Basic credential', { authorization: 'Basic YWxpY2U6c2VjcmV0' }],
    ['Bearer without a token', { authorization: 'Bearer ' }],
    ['a token that is not a JWT', { authorization: 'Bearer not.a.jwt' }],
    ['a JWT signed with another secret', { authorization: `Bearer ${signJwt(claims('alice'), 'HS256', 'another-secret-that-is-long-enough-too')}` }],
    ['an expired JWT', { authorization: `Bearer ${signJwt(claims('alice', -10), 'HS256')}` }],
    ['a JWT without exp', { authorization: `Bearer ${signJwt({ sub: 'alice' }, 'HS256')}` }],
    ['a JWT without sub', { authorization: `Bearer ${signJwt({ exp: Math.floor(Date.now() / 1000) + 60 }, 'HS256')}` }],
    ['a JWT whose sub is not a string', { authorization: `Bearer ${signJwt(claims(42), 'HS256')}` }],
    ['a JWT whose sub holds a lone surrogate', { authorization: `Bearer ${signJwt(claims('al\ud800ice'), 'HS256')}` }],
    ['an unsigned (alg none) JWT', { authorization: `Bearer ${signJwt(claims('alice'), 'none')}` }]
  ]
  for (const [name, headers] of cases) {
    const res = await requestTicket(edge.http, headers)
    t.equal(res.status, 401, name)
    t.equal(res.body.code, 'FST_NOTIFY_UNAUTHORIZED', name)
  }
})

t.test('without the tickets plugin there is no ticket route and ?ticket= is refused', async (t) => {
  const edge = await build(t, { tickets: false })
  t.equal((await requestTicket(edge.http, { authorization: `Bearer ${token(edge.app, 'alice')}` })).status, 404)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${'C'.repeat(43)}`), 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${token(edge.app, 'alice')}`), 101, 'JWTs still work')
})

t.test('a failing ticket store answers 503, on issue and on redeem', async (t) => {
  const broken: TicketStore = {
    issue: async () => { throw new Error('store down') },
    redeem: async () => { throw new Error('store down') }
  }
  const edge = await build(t, { tickets: { store: broken } })
  const res = await requestTicket(edge.http, { authorization: `Bearer ${token(edge.app, 'alice')}` })
  t.equal(res.status, 503)
  t.equal(res.body.code, 'FST_NOTIFY_TICKET_STORE_UNAVAILABLE')
  const refused = await handshake(`${edge.ws}/ws?ticket=${'D'.repeat(43)}`)
  t.equal(refused.status, 503)
  t.equal(refused.body?.code, 'FST_NOTIFY_TICKET_STORE_UNAVAILABLE')
})

t.test('the ticket route path is configurable', async (t) => {
  const edge = await build(t, { tickets: { path: '/auth/ws-ticket' } })
  const res = await fetch(`${edge.http}/auth/ws-ticket`, { method: 'POST', headers: { authorization: `Bearer ${token(edge.app, 'alice')}` } })
  t.equal(res.status, 200)
  const { ticket: issued } = await res.json() as { ticket: string }
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${issued}`), 101)
})
