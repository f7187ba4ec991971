import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { build, connect, handshakeStatus, ticket, token } from './helpers.js'

const SHORT = '2s' // exp is truncated to the second: the token lives 1 to 2 s

t.test('a connection opened with ?token= is closed with 4001 when the JWT expires', async (t) => {
  const edge = await build(t)
  const { client, welcome } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice', SHORT)}`)
  t.equal(welcome.user, 'alice')
  t.equal(await client.closed, 4001)
  const late = Date.now() - welcome.expiresAt
  t.ok(late >= -20 && late < 1000, `closed ${late} ms after exp`)
})

t.test('a connection opened with a ticket expires with the JWT the ticket was taken with', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice', SHORT)
  const { exp } = edge.app.jwt.decode<{ exp: number }>(jwt)!
  const { client, welcome } = await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, jwt)}`)
  t.equal(welcome.expiresAt, exp * 1000)
  t.equal(await client.closed, 4001)
  t.ok(Date.now() >= exp * 1000 - 20)
})

t.test('a ticket whose JWT has expired by the handshake is refused with 401', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice', SHORT)
  const one = await ticket(edge.http, jwt)
  await delay(edge.app.jwt.decode<{ exp: number }>(jwt)!.exp * 1000 - Date.now() + 10)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`), 401)
})

t.test('refresh with a token for the same user extends the connection', async (t) => {
  const edge = await build(t)
  const { client, welcome } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice', SHORT)}`)
  const refreshed = await client.request({ event: 'refresh', token: token(edge.app, 'alice', '1h') }, 'refreshed')
  t.ok(refreshed.expiresAt > welcome.expiresAt + 3_000_000, 'about an hour later')
  // Nothing to wait on: the point is that nothing happens at the old expiry.
  await delay(welcome.expiresAt - Date.now() + 300)
  await client.request({ event: 'ping' }, 'pong')
  t.equal(client.closeCode, null, 'still open past the first token\'s exp')
})

t.test('refresh with a token for another user answers UNAUTHORIZED and closes with 4003', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  client.send({ event: 'refresh', token: token(edge.app, 'mallory'), id: 'c4' })
  t.match(await client.event('error'), { code: 'UNAUTHORIZED', id: 'c4' })
  t.equal(await client.closed, 4003)
})

t.test('refresh with a bad or expired token answers UNAUTHORIZED and keeps the connection', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/ws?token=${token(edge.app, 'alice')}`)
  const expired = edge.app.jwt.sign({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 10 })
  for (const bad of ['not-a-jwt', expired, token(edge.app, 'alice').slice(0, -2) + 'xx']) {
    t.match(await client.request({ event: 'refresh', token: bad }, 'error'), { code: 'UNAUTHORIZED' })
  }
  await client.request({ event: 'ping' }, 'pong')
  t.equal(client.closeCode, null)
})

t.test('an anonymous connection cannot refresh', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  t.match(await client.request({ event: 'refresh', token: token(edge.app, 'alice') }, 'error'), { code: 'UNAUTHORIZED' })
  t.equal(client.closeCode, null)
})
