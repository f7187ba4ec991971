import t from 'tap'
import { normalizeOrigin } from '../plugins/origin.js'
import { build, handshakeStatus, registrationError } from './helpers.js'

// A configured `https://App.Example` used to refuse every real browser (they send the scheme and
// host in lower case). Both sides are normalized now; what is no origin fails registration.

t.test('normalizeOrigin: lower case, no default port, no trailing slash; null for what is no origin', async (t) => {
  const cases: Array<[string, string | null]> = [
    ['https://App.Example:443/', 'https://app.example'],
    ['HTTP://LOCALHOST:80', 'http://localhost'],
    ['http://localhost:8080/', 'http://localhost:8080'],
    ['https://app.example:8443', 'https://app.example:8443'],
    ['http://[::1]:3000', 'http://[::1]:3000'],
    ['https://Bücher.example', 'https://xn--bcher-kva.example'],
    ['capacitor://Localhost', 'capacitor://localhost'],
    ['chrome-extension://ABCdef/', 'chrome-extension://abcdef'],
    ['null', null],
    ['*', null],
    ['https://*.example', null],
    ['app.example', null],
    ['https://app.example/path', null],
    ['https://app.example?', null],
    ['https://app.example?x=1', null],
    ['https://app.example#', null],
    ['https://user:pass@app.example', null],
    ['file:///etc/passwd', null],
    ['', null]
  ]
  for (const [value, normalized] of cases) t.equal(normalizeOrigin(value), normalized, value)
})

t.test('an allowedOrigins entry that is no origin fails registration with a coded error', async (t) => {
  for (const entry of ['*', 'null', 'app.example', 'https://app.example/app', 'https://app.example?x', 'https://u:p@app.example', 'file:///x', '', 42]) {
    const err = await registrationError({ socketAuth: { allowedOrigins: ['https://ok.example', entry] } })
    t.equal(err?.code, 'FST_NOTIFY_INVALID_OPTION', String(entry))
  }
  t.equal(await registrationError({ socketAuth: { allowedOrigins: ['https://App.Example:443/'] } }), null)
})

t.test('a handshake\'s Origin is compared normalized to the normalized list', async (t) => {
  const edge = await build(t, { socketAuth: { allowedOrigins: ['https://App.Example:443/', 'http://LOCALHOST:8080', 'capacitor://Localhost'] } })
  const status = (origin: string): Promise<number> => handshakeStatus(`${edge.ws}/public`, { origin })
  for (const origin of ['https://app.example', 'HTTPS://APP.EXAMPLE', 'https://app.example:443', 'https://app.example/', 'http://localhost:8080', 'capacitor://localhost']) {
    t.equal(await status(origin), 101, `${origin} is allowed`)
  }
  for (const origin of ['https://app.example:8443', 'http://app.example', 'https://app.example.evil', 'https://evil.example/https://app.example',
    'http://localhost', 'null', 'not an origin', 'https://app.example/path']) {
    t.equal(await status(origin), 403, `${origin} is refused`)
  }
})
