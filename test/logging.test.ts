import { once } from 'node:events'
import { Writable } from 'node:stream'
import t from 'tap'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { notifyEdge, notifyEdgeLoggerOptions, redactSecrets } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, handshakeStatus, publish, ticket, urls } from './helpers.js'

/** A pino destination that keeps every line. */
function capture (): { stream: Writable, text: () => string } {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
  return { stream, text: () => lines.join('') }
}

async function open (url: string, options: WebSocket.ClientOptions = {}): Promise<void> {
  const socket = new WebSocket(url, options)
  await once(socket, 'message') // welcome
  socket.close()
  await once(socket, 'close')
}

t.test('no ticket, JWT or API key reaches the example app\'s log, whatever the request', async (t) => {
  const log = capture()
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY })
  const app = await buildApp(config, { level: 'trace', stream: log.stream })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { http, ws } = urls(app)

  const login = await fetch(`${http}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice' }) })
  const { token: jwt } = await login.json() as { token: string }
  const expired = app.jwt.sign({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 })
  const garbage = 'not-a-jwt-but-still-a-secret-0123456789'
  const fakeTicket = 'A'.repeat(43)
  const one = await ticket(http, jwt)

  await open(`${ws}/ws?ticket=${one}`)
  await open(`${ws}/ws?token=${jwt}`)
  await open(`${ws}/ws?auth_header=${encodeURIComponent(`Bearer ${jwt}`)}`)
  await open(`${ws}/ws`, { headers: { authorization: `Bearer ${jwt}` } })
  for (const bad of [`ticket=${one}`, `ticket=${fakeTicket}`, `token=${expired}`, `token=${garbage}`, `auth_header=${garbage}`]) {
    t.equal(await handshakeStatus(`${ws}/ws?${bad}`), 401, bad.split('=')[0])
  }
  t.equal(await handshakeStatus(`${ws}/ws`, { headers: { authorization: `Bearer ${garbage}` } }), 401)
  // The static files' wildcard route takes any path: these are upgrades of plain routes, closed at once.
  t.equal(await handshakeStatus(`${ws}/wss?token=${jwt}`), 101, 'a mistyped path')
  t.equal(await handshakeStatus(`${ws}/health?token=${jwt}`), 101, 'a plain route')
  t.equal((await fetch(`${http}/ws?token=${jwt}`)).status, 404, 'plain HTTP on the socket route')
  t.equal((await fetch(`${http}/nope?ticket=${one}&token=${jwt}`)).status, 404)
  t.equal((await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${garbage}` } })).status, 401)
  t.equal((await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${expired}` } })).status, 401)
  t.equal((await publish(http, { stream: 'promotional', data: {} })).status, 202)
  t.equal((await publish(http, { stream: 'promotional', data: {} }, `${API_KEY}-wrong`)).status, 401)
  await app.close()

  const text = log.text()
  t.ok(text.split('\n').length > 40, 'the log has the lines of those requests')
  t.match(text, /\[redacted\]/, 'and says where it redacted')
  for (const [name, secret] of Object.entries({
    jwt,
    'jwt signature': jwt.split('.')[2],
    'expired jwt': expired,
    ticket: one,
    'fake ticket': fakeTicket,
    'garbage token': garbage,
    'api key': API_KEY
  })) {
    t.notOk(text.includes(secret), `the log does not hold the ${name}`)
  }
})

t.test("Fastify's default logger would log a token given to a mistyped path; the helper's options do not", async (t) => {
  for (const redacting of [false, true]) {
    const log = capture()
    const app = Fastify({ logger: { ...(redacting ? notifyEdgeLoggerOptions() : {}), level: 'info', stream: log.stream } })
    t.teardown(() => app.close())
    await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const jwt = app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' })
    await fetch(`${urls(app).http}/notifications?token=${jwt}`)
    await app.close()
    t.equal(log.text().includes(jwt), !redacting, redacting ? 'redacted' : 'leaked without the helper')
  }
})

t.test('redactSecrets keeps the rest of a URL and catches bare JWTs', async (t) => {
  t.equal(redactSecrets('/ws?a=1&ticket=abc&b=2&token=x.y.z'), '/ws?a=1&ticket=[redacted]&b=2&token=[redacted]')
  t.equal(redactSecrets('/ws?AUTH_HEADER=Bearer%20abc#frag'), '/ws?AUTH_HEADER=[redacted]', 'the router ends a path at #, so the value runs on')
  t.equal(redactSecrets('bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_1 end'), 'bearer [redacted] end')
  t.equal(redactSecrets('/health?verbose=1'), '/health?verbose=1')
})
