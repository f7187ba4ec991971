import t from 'tap'
import { build, connect, handshakeStatus, ticket, token } from './helpers.js'

t.test('a ticket taken with a JWT opens an authenticated socket', async (t) => {
  const edge = await build(t)
  const res = await fetch(`${edge.http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${token(edge.app, 'alice')}` } })
  t.equal(res.status, 200)
  const body = await res.json() as { ticket: string, expiresIn: number }
  t.equal(body.expiresIn, 30)
  t.match(body.ticket, /^[A-Za-z0-9_-]{43}$/, '256 bits in base64url')
  const { welcome } = await connect(t, `${edge.ws}/ws?ticket=${body.ticket}`)
  t.equal(welcome.user, 'alice')
  t.type(welcome.expiresAt, 'number')
})

t.test('rejects a replayed ticket with 401', async (t) => {
  const edge = await build(t)
  const one = await ticket(edge.http, token(edge.app, 'alice'))
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`), 101)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`), 401)
})
