import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import Fastify from 'fastify'
import { notifyEdgeLoggerOptions, redactSecrets } from '../plugins/index.js'
import { API_KEY, SECRET, claims, handshakeStatus, signJwt, urls } from './helpers.js'
import { serverProcess } from './example-process.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

// The query parser decodes names and values; the redaction must hold for whatever it would
// accept: encoded names, encoded values, repeated parameters, array forms, on every route, in
// request, error and access logs, and in the dedicated edge's own log. Each test greps the whole log.

const encoded = (text: string): string => [...text].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('')

async function ticketFor (http: string, jwt: string): Promise<string> {
  const res = await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })
  return ((await res.json()) as { ticket: string }).ticket
}

/** Sends every hostile form of `jwt` and tickets to `http`/`ws`; answers the secrets the log must not hold. */
async function probe (tt: Test, http: string, ws: string, jwt: string): Promise<Record<string, string>> {
  const live = [await ticketFor(http, jwt), await ticketFor(http, jwt)]
  const fake = 'F'.repeat(20) + 'a-ticket-that-was-never-issued'
  const [header, payload, signature] = jwt.split('.')
  const queries = [
    `%74oken=${jwt}`, `T%4FKEN=${jwt}`, `to%6Ben=${encoded(jwt)}`, `token=${encoded(jwt)}`, `token=%65${jwt.slice(1)}`,
    `token=${jwt}&token=${jwt}`, `a=1&token=${jwt}&b=2&%74oken=${jwt}`, `token[]=${jwt}`, `token%5B%5D=${jwt}&token%5B0%5D=${jwt}`,
    `%61uth_header=Bearer%20${jwt}`, `AUTH_HEADER=Bearer+${encoded(jwt)}`, `access_token=${jwt}`,
    `%74icket=${fake}`, `ticket=${fake}&ticket=${fake}`, `ticket[]=${fake}`, `ticket[0]=${fake}`, `t%69cket=${encoded(fake)}`,
    `a=1;token=${fake}`, `q=${header}.${payload}.${signature}`, `q=${header}%2E${payload}%2E${signature}`,
    `q=%2565${jwt.slice(1)}`, `q=Bearer%20${encoded(jwt)}`
  ]
  const paths = ['/ws', '/public', '/notifications', '/health', '/nope', '/ws/ticket']
  for (const path of paths) {
    for (const query of queries) {
      await fetch(`${http}${path}?${query}`)
      await fetch(`${http}${path}?${query}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, authorization: 'Bearer nope' }, body: '{"stream":' })
    }
  }
  // In the path, where no parameter name helps: plain, encoded, encoded first letter, and a bad URL quoting it.
  for (const path of [`/x/${jwt}`, `/x/${encoded(jwt)}`, `/x/%65${jwt.slice(1)}`, `/%ZZ/${jwt}`, `/x#token=${fake}`, `/x;ticket=${fake}`]) await fetch(`${http}${path}`)
  // Live credentials under encoded names really authenticate: these are the leaks the review found.
  tt.equal(await handshakeStatus(`${ws}/ws?%74icket=${live[0]}`), 101, 'a live ticket under an encoded name')
  tt.equal(await handshakeStatus(`${ws}/ws?t%6Fken=${jwt}`), 101, 'a JWT under an encoded name')
  tt.equal(await handshakeStatus(`${ws}/public?%74oken=${jwt}&ticket[]=${live[1]}`), 101)
  tt.equal(await handshakeStatus(`${ws}/health?%74icket=${live[1]}`), 101, 'a plain route upgraded')
  for (const query of queries.slice(0, 6)) await handshakeStatus(`${ws}/ws?${query}`).catch(() => 0)
  return {
    jwt,
    'jwt payload': payload,
    'jwt signature': signature,
    'encoded jwt': encoded(jwt),
    'encoded jwt signature': encoded(signature),
    'live ticket': live[0],
    'other live ticket': live[1],
    'fake ticket': fake,
    'encoded fake ticket': encoded(fake)
  }
}

function check (tt: Test, log: string, secrets: Record<string, string>): void {
  tt.ok(log.split('\n').length > 200, 'the log has the lines of those requests')
  tt.match(log, /\[redacted\]/)
  for (const [name, secret] of Object.entries(secrets)) tt.notOk(log.includes(secret), `the log does not hold the ${name}`)
  tt.notOk(/"level":50/.test(log), 'nothing of it logged as an error')
}

t.test('no credential reaches the example app\'s log at trace level, however it is encoded or placed', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY })
  const app = await buildApp(config, { level: 'trace', stream })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { http, ws } = urls(app)
  const secrets = await probe(t, http, ws, app.jwt.sign({ sub: 'alice' }, { expiresIn: '1h' }))
  await app.close()
  check(t, lines.join(''), secrets)
})

t.test('no credential reaches the dedicated edge\'s log (the bin, from dist/)', async (t) => {
  const bin = fileURLToPath(new URL('../dist/bin/fastify-notify-edge.js', import.meta.url))
  const secret = 'a-redaction-test-secret-long-enough-for-hs256'
  const proc = await serverProcess(t, process.execPath, [bin], { JWT_SECRET: secret, PUBLISH_API_KEY: API_KEY, LOG_LEVEL: 'trace' })
  const secrets = await probe(t, proc.http, proc.ws, signJwt(claims('alice'), 'HS256', secret))
  t.equal(await proc.stop(), 0)
  check(t, proc.output(), secrets)
})

t.test('redactSecrets: names as the query parser decodes them, values and JWTs however encoded', async (t) => {
  const jwt = signJwt(claims('alice'), 'HS256')
  const cases: Array<[string, string]> = [
    ['/x?%74oken=abc&b=1', '/x?%74oken=[redacted]&b=1'],
    ['/x?T%4FKEN=abc', '/x?T%4FKEN=[redacted]'],
    ['/x?ticket=a&ticket=b', '/x?ticket=[redacted]&ticket=[redacted]'],
    ['/x?ticket[]=a&ticket[0]=b&ticket%5B%5D=c', '/x?ticket[]=[redacted]&ticket[0]=[redacted]&ticket%5B%5D=[redacted]'],
    ['/x?a=1;token=abc', '/x?a=1;token=[redacted]'],
    ['/x#token=abc', '/x#token=[redacted]'],
    ['/ws?AUTH_HEADER=Bearer%20abc#frag', '/ws?AUTH_HEADER=[redacted]'],
    [`/x?q=${encoded(jwt)}&r=1`, '/x?q=[redacted]&r=1'],
    [`/x/%2565${jwt.slice(1).replace(/\./g, '%252E')}`, '/x/[redacted]'],
    [`Route GET:/x/${jwt} not found`, 'Route GET:/x/[redacted] not found'],
    // A JSON header after white space is still a JWT to fast-jwt.
    [`${Buffer.from(' {"alg":"HS256"}').toString('base64url')}.e30.sig`, '[redacted]'],
    ['api.example.com/app.min.js?v=1.2.3&to=me', 'api.example.com/app.min.js?v=1.2.3&to=me'],
    ['/x?tokens=1&ticketing=2', '/x?tokens=1&ticketing=2']
  ]
  for (const [raw, redacted] of cases) t.equal(redactSecrets(raw), redacted, raw.slice(0, 40))
})

t.test('an error logged with a URL in its message, stack or cause is redacted, and keeps its type and fields', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
  const app = Fastify({ logger: { ...notifyEdgeLoggerOptions(), level: 'info', stream } })
  t.teardown(() => app.close())
  const jwt = signJwt(claims('alice'), 'HS256')
  const err = Object.assign(new TypeError('\'/x?%74icket=live-ticket-0123456789\' is not valid', { cause: new Error(`upstream said ${jwt}`) }), { code: 'E_TEST' })
  app.log.error({ err }, 'failed')
  app.log.warn({ err: new Error('nothing secret here') }, 'plain')
  const [first, second] = lines.map((line) => JSON.parse(line))
  t.notOk(lines[0].includes('live-ticket-0123456789') || lines[0].includes(jwt.split('.')[2]), 'no secret in message, stack or cause')
  t.match(first.err, { type: 'TypeError', code: 'E_TEST', message: "'/x?%74icket=[redacted]' is not valid", stack: /\[redacted\]/ })
  t.match(JSON.stringify(first.err), /upstream said \[redacted\]/)
  t.equal(err.message, '\'/x?%74icket=live-ticket-0123456789\' is not valid', 'the error itself is left as it was')
  t.match(second.err, { type: 'Error', message: 'nothing secret here' })
})

t.test('a decoded query logged as an object has its credentials redacted, arrays too', async (t) => {
  const lines: string[] = []
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(chunk.toString()); done() } })
  const app = Fastify({ logger: { ...notifyEdgeLoggerOptions(), level: 'info', stream } })
  t.teardown(() => app.close())
  const jwt = signJwt(claims('alice'), 'HS256')
  app.log.info({ query: { token: [jwt, jwt], ticket: 'live-ticket-0123456789', auth_header: `Bearer ${jwt}`, page: '2' } }, 'query')
  app.log.info({ request: { query: { access_token: 'opaque-access-token-0123' } } }, 'nested query')
  app.log.info({ req: { query: { token: jwt } } }, 'not a request: the req serializer keeps no query')
  const [first, second, third] = lines.map((line) => JSON.parse(line))
  t.same(first.query, { token: '[redacted]', ticket: '[redacted]', auth_header: '[redacted]', page: '2' })
  t.same(second.request.query, { access_token: '[redacted]' })
  t.notOk(lines[2].includes(jwt.split('.')[2]))
  t.equal(third.req.url, undefined)
})

t.test('redactSecrets stays linear and never throws on a hostile 16 KB URL', async (t) => {
  for (const unit of ['%', '%a', 'a.', 'eyJ.', 'a%2E', '?a=', ';a=', 'a=#', '=', '[]', '[', '+', '%20']) {
    const url = `/x?${unit.repeat(Math.floor(16_000 / unit.length))}=1&token=secret-value`
    const started = performance.now()
    const redacted = redactSecrets(url)
    const ms = performance.now() - started
    t.ok(ms < 250, `${unit}: ${ms.toFixed(1)} ms`)
    t.notOk(redacted.includes('secret-value'), `${unit}: the parameter after it is still redacted`)
  }
})
