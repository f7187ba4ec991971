import t from 'tap'
import { logCapture } from './log-capture.js'
import { build, claims, connect, handshake, handshakeStatus, signJwt, ticket, token } from './helpers.js'

t.test('a JWT is accepted in ?token=, ?auth_header= and Authorization: Bearer', async (t) => {
  const edge = await build(t)
  const jwt = token(edge.app, 'alice')
  const ways: Array<[string, string, object]> = [
    ['?token=', `${edge.ws}/ws?token=${jwt}`, {}],
    ['?auth_header=Bearer …', `${edge.ws}/ws?auth_header=${encodeURIComponent(`Bearer ${jwt}`)}`, {}],
    ['?auth_header= with the bare token', `${edge.ws}/ws?auth_header=${jwt}`, {}],
    ['Authorization: Bearer', `${edge.ws}/ws`, { headers: { authorization: `Bearer ${jwt}` } }]
  ]
  for (const [name, url, options] of ways) {
    const { client, welcome } = await connect(t, url, options)
    t.equal(welcome.user, 'alice', name)
    t.type(welcome.connection, 'string', name)
    await client.close()
  }
})

t.test('the handshake answers 401 before the upgrade to a missing, invalid or expired JWT', async (t) => {
  const edge = await build(t)
  const bad: Array<[string, string]> = [
    ['no credential', ''],
    ['an empty token', '?token='],
    ['garbage', '?token=garbage'],
    ['another secret', `?token=${signJwt(claims('alice'), 'HS256', 'another-secret-that-is-long-enough-too')}`],
    ['an expired JWT', `?token=${signJwt(claims('alice', -10), 'HS256')}`],
    ['no exp', `?token=${signJwt({ sub: 'alice' }, 'HS256')}`],
    ['alg none', `?token=${signJwt(claims('alice'), 'none')}`],
    ['a Basic auth_header', '?auth_header=Basic%20YWxpY2U6c2VjcmV0']
  ]
  for (const [name, query] of bad) {
    const res = await handshake(`${edge.ws}/ws${query}`)
    t.equal(res.status, 401, name)
    t.equal(res.body?.code, 'FST_NOTIFY_UNAUTHORIZED', name)
  }
  const header = await handshake(`${edge.ws}/ws`, { headers: { authorization: `Bearer ${signJwt(claims('alice', -10), 'HS256')}` } })
  t.equal(header.status, 401, 'an expired JWT in the header')
  t.equal(edge.app.notifyStreams.get('/ws')?.connections.size, 0, 'no socket was created')
})

t.test('an anonymous route needs no credential and ignores one that is given', async (t) => {
  const edge = await build(t)
  t.equal((await connect(t, `${edge.ws}/public`)).welcome.user, null)
  const { welcome } = await connect(t, `${edge.ws}/public?token=${token(edge.app, 'alice')}`)
  t.same({ user: welcome.user, expiresAt: welcome.expiresAt }, { user: null, expiresAt: null })
})

t.test('allowedOrigins refuses other origins with 403 and judges origin-less handshakes by their credential', async (t) => {
  const edge = await build(t, { socketAuth: { allowedOrigins: ['https://app.example'] } })
  const jwt = token(edge.app, 'alice')
  const foreign = await handshake(`${edge.ws}/ws?token=${jwt}`, { origin: 'https://evil.example' })
  t.equal(foreign.status, 403)
  t.equal(foreign.body?.code, 'FST_NOTIFY_FORBIDDEN_ORIGIN')
  t.equal(await handshakeStatus(`${edge.ws}/public`, { origin: 'https://evil.example' }), 403, 'anonymous routes too')
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${jwt}`, { origin: 'https://app.example' }), 101)
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${jwt}`), 101, 'no Origin: not a browser')
  t.equal(await handshakeStatus(`${edge.ws}/ws`), 401, 'no Origin and no credential')
})

t.test('tickets and tokens never reach the logs', async (t) => {
  const logs = logCapture()
  const edge = await build(t, {}, { logger: { level: 'trace', stream: logs.stream } })
  const jwt = token(edge.app, 'alice')
  const issued = await ticket(edge.http, jwt)
  const { client } = await connect(t, `${edge.ws}/ws?ticket=${issued}`)
  await client.close()
  t.equal(await handshakeStatus(`${edge.ws}/ws?ticket=${issued}`), 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws?token=${jwt}x`), 401)
  t.equal(await handshakeStatus(`${edge.ws}/ws`, { headers: { authorization: `Bearer ${jwt}` } }), 101)
  await edge.app.close()
  const log = JSON.stringify(logs.lines)
  t.match(log, /\/ws\?\[redacted\]/, 'handshakes are logged, without their query')
  t.match(log, /"url":"\/ws"/, 'a handshake without a query is logged as is')
  t.notMatch(log, issued, 'no ticket')
  t.notMatch(log, jwt.split('.')[2], 'no token')
})
