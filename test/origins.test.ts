import t from 'tap'
import { build, connect, handshakeStatus, ticket, token } from './helpers.js'

const APP = 'https://app.example'

t.test('allowedOrigins: a foreign Origin is refused with 403 before the ticket is spent', async (t) => {
  const edge = await build(t, { socketAuth: { allowedOrigins: [APP] } })
  const one = await ticket(edge.http, token(edge.app, 'alice'))
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`, { origin: 'https://evil.example' }), 403)
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${one}`, { origin: 'null' }), 403, 'the opaque origin too')
  const { welcome } = await connect(t, `${edge.ws}/ws?ticket=${one}`, { origin: APP })
  t.equal(welcome.user, 'alice', 'the ticket still works from the allowed origin')
})

t.test('allowedOrigins also guards the anonymous route', async (t) => {
  const edge = await build(t, { socketAuth: { allowedOrigins: [APP] } })
  t.equal(await handshakeStatus(`${edge.ws}/public`, { origin: 'https://evil.example' }), 403)
  t.equal(await handshakeStatus(`${edge.ws}/public`, { origin: APP }), 101)
})

t.test('a handshake without Origin is judged by its credential', async (t) => {
  const edge = await build(t, { socketAuth: { allowedOrigins: [APP] } })
  t.equal(await handshakeStatus(`${edge.ws}/ws`), 401, 'no credential')
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${token(edge.app, 'alice')}`), 101, 'a valid token')
  t.equal(await handshakeStatus(`${edge.ws}/public`), 101, 'anonymous route')
})

t.test('without allowedOrigins every origin is accepted', async (t) => {
  const edge = await build(t)
  t.equal(await handshakeStatus(`${edge.ws}/public`, { origin: 'https://anywhere.example' }), 101)
})

t.test('allowedOrigins must be an array of origins', async (t) => {
  await t.rejects(build(t, { socketAuth: { allowedOrigins: APP as unknown as string[] } }), { code: 'FST_NOTIFY_INVALID_OPTION' })
  await t.rejects(build(t, { socketAuth: { allowedOrigins: [''] } }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})
