import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { build, claims, connect, handshakeStatus, signJwt, ticket, token } from './helpers.js'

t.test('a connection closes with 4001 when its JWT expires, unless refreshed in time', async (t) => {
  const edge = await build(t)
  // Expires 1 to 2 seconds from now (exp has whole seconds); all three share it.
  const soon = claims('alice', 2)
  const short = signJwt(soon, 'HS256')
  const expiresAt = (soon.exp as number) * 1000

  const byToken = (await connect(t, `${edge.ws}/ws?token=${short}`)).client
  const byTicket = (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, short)}`)).client
  const { client: refreshed, welcome } = await connect(t, `${edge.ws}/ws?token=${short}`)
  t.equal(welcome.expiresAt, expiresAt)
  await refreshed.subscribe('order')

  const later = claims('alice', 3600)
  const answer = await refreshed.request({ event: 'refresh', token: signJwt(later, 'HS256') }, 'refreshed')
  t.equal(answer.expiresAt, (later.exp as number) * 1000)

  t.equal(await byToken.closed, 4001, 'a token connection expires with its JWT')
  t.equal(await byTicket.closed, 4001, 'a ticket connection expires with the JWT it was issued for')
  t.ok(Date.now() >= expiresAt, 'not before the expiry')
  t.equal((await refreshed.request({ event: 'ping' }, 'pong')).event, 'pong', 'the refreshed one outlives the old expiry')
  t.same((await refreshed.subscribe('order')).streams, ['order'], 'with its subscriptions')
})

t.test('a refresh with a bad or expired token is refused and the connection stays as it was', async (t) => {
  const edge = await build(t)
  const { client, welcome } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  for (const [what, jwt] of [
    ['garbage', 'garbage'],
    ['expired', signJwt(claims('alice', -5), 'HS256')],
    ['another secret', signJwt(claims('alice'), 'HS256', 'another-secret-that-is-long-enough-too')]
  ]) {
    client.send({ event: 'refresh', token: jwt, id: what })
    t.match(await client.event('error'), { code: 'UNAUTHORIZED', id: what }, what)
  }
  t.equal((await client.request({ event: 'ping' }, 'pong')).event, 'pong')
  t.equal(welcome.user, 'alice')
})

t.test('a refresh with another user\'s token closes the connection with 4003', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  client.send({ event: 'refresh', token: token(edge.app, 'mallory'), id: 'r' })
  t.match(await client.event('error'), { code: 'UNAUTHORIZED', id: 'r' })
  t.equal(await client.closed, 4003)
})

t.test('an anonymous connection has nothing to refresh', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  client.send({ event: 'refresh', token: token(edge.app, 'alice'), id: 'r' })
  t.match(await client.event('error'), { code: 'UNAUTHORIZED', id: 'r' })
  t.equal((await client.request({ event: 'ping' }, 'pong')).event, 'pong')
})

t.test('a ticket whose JWT has expired by the handshake is refused with 401', async (t) => {
  const edge = await build(t)
  const soon = claims('alice', 1)
  const one = await ticket(edge.http, signJwt(soon, 'HS256'))
  // The ticket itself lives 30 s; it is the JWT's exp, carried by the ticket, that runs out.
  await delay((soon.exp as number) * 1000 - Date.now() + 10)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`), 401)
})
