import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import t from 'tap'
import {
  notify, notifyBus, notifyHistory, notifyPublishApi, notifySocketAuth, notifyStreams, notifyTickets
} from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, SECRET, handshakeStatus, registrationError, token, urls } from './helpers.js'

const fn = (): boolean => true

// Each of these must fail registration loudly with FST_NOTIFY_INVALID_OPTION, never be coerced.
const INVALID: Array<[string, Record<string, unknown>]> = [
  ['no streams', { streams: undefined }],
  ['an empty streams array', { streams: [] }],
  ['streams that is not an array', { streams: { order: 'private' } }],
  ['a stream without a name', { streams: [{ kind: 'public' }] }],
  ['a stream name with a slash', { streams: [{ name: 'a/b', kind: 'public' }] }],
  ['a stream name with a wildcard', { streams: [{ name: '#', kind: 'public' }] }],
  ['a stream name over 64 characters', { streams: [{ name: 's'.repeat(65), kind: 'public' }] }],
  ['a stream declared twice', { streams: [{ name: 'a', kind: 'public' }, { name: 'a', kind: 'private' }] }],
  ['a stream of unknown kind', { streams: [{ name: 'a', kind: 'secret' }] }],
  ['a null stream', { streams: [null] }],
  ['an authorize that is not a function', { streams: [{ name: 'a', kind: 'public', authorize: true }] }],
  ['a schema that does not compile', { streams: [{ name: 'a', kind: 'public', schema: { type: 'nonsense' } }] }],
  ['a topic prefix with a slash', { topicPrefix: 'a/b' }],
  ['maxUsersPerPublish of 0', { maxUsersPerPublish: 0 }],
  ['a short jwt secret', { jwt: { secret: 'short' } }],
  ['a jwt secret that is not a string', { jwt: { secret: 1e40 } }],
  ['a public key with HS256', { jwt: { publicKey: 'pem', algorithm: 'HS256' } }],
  ['a public key with alg none', { jwt: { publicKey: 'pem', algorithm: 'none' } }],
  ['a public key that is not a string or Buffer', { jwt: { publicKey: 42, algorithm: 'RS256' } }],
  ['a jwt expiresIn of 0', { jwt: { secret: SECRET, expiresIn: 0 } }],
  ['a jwt expiresIn without a unit', { jwt: { secret: SECRET, expiresIn: '60' } }],
  ['a jwt expiresIn in weeks', { jwt: { secret: SECRET, expiresIn: '2w' } }],
  ['a jwt expiresIn with a public key', { jwt: { publicKey: 'pem', algorithm: 'RS256', expiresIn: '1h' } }],
  ['a bus emitter that is not an emitter', { bus: { emitter: {} } }],
  ['a negative publishTimeout', { bus: { publishTimeout: -1 } }],
  ['a fractional closeTimeout', { bus: { closeTimeout: 1.5 } }],
  ['a ticket ttl of 0', { tickets: { ttl: 0 } }],
  ['a ticket ttl given as a string', { tickets: { ttl: '30' } }],
  ['a ticket path without a slash', { tickets: { path: 'ticket' } }],
  ['a ticket store without redeem', { tickets: { store: { issue: fn } } }],
  ['allowedOrigins that is a string', { socketAuth: { allowedOrigins: 'https://a.example' } }],
  ['an empty origin', { socketAuth: { allowedOrigins: [''] } }],
  ['a route path without a slash', { routes: [{ path: 'ws' }] }],
  ['two routes on one path', { routes: [{ path: '/ws' }, { path: '/ws', anonymous: true }] }],
  ['maxSubscriptions of 0', { routes: [{ path: '/ws', maxSubscriptions: 0 }] }],
  ['a drainTimeout that is not a number', { routes: [{ path: '/ws', drainTimeout: '5s' }] }],
  ['a maxPayload of Infinity', { routes: [{ path: '/ws', maxPayload: Infinity }] }],
  ['a short API key', { publishApi: { apiKey: 'short' } }],
  ['an empty API key list', { publishApi: { apiKey: [] } }],
  ['an API key list with a short key', { publishApi: { apiKey: [API_KEY, 'short'] } }],
  ['a publish path without a slash', { publishApi: { apiKey: API_KEY, path: 'notifications' } }],
  ['a bodyLimit of 0', { publishApi: { apiKey: API_KEY, bodyLimit: 0 } }]
]

t.test('bad options fail registration with FST_NOTIFY_INVALID_OPTION', async (t) => {
  for (const [what, opts] of INVALID) {
    const err = await registrationError(opts)
    t.equal(err?.code, 'FST_NOTIFY_INVALID_OPTION', `${what}: ${err?.message}`)
  }
})

t.test('the defaults register cleanly', async (t) => {
  t.equal(await registrationError({}), null)
})

t.test('each plugin can be registered on its own, with the app\'s own @fastify/jwt', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(jwt, { secret: SECRET, verify: { algorithms: ['HS256'] } })
  await app.register(notifyBus)
  // The example's streams keep history.
  await app.register(notifyHistory)
  await app.register(notify, { streams: STREAMS, topicPrefix: 'solo' })
  await app.register(notifyTickets, { ttl: 10 })
  await app.register(notifySocketAuth)
  await app.register(notifyStreams)
  await app.register(notifyStreams, { path: '/anonymous', anonymous: true })
  await app.register(notifyPublishApi, { apiKey: API_KEY })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { http, ws } = urls(app)

  const res = await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${token(app, 'alice')}` } })
  t.equal(res.status, 200)
  t.equal(((await res.json()) as { expiresIn: number }).expiresIn, 10)
  t.same([...app.notifyStreams.keys()], ['/ws', '/anonymous'])
  t.equal(app.notify.streams.get('order')!.topic('alice').split('/')[0], 'solo')
  t.equal(await handshakeStatus(`${ws}/ws?token=${token(app, 'alice')}`), 101)
  t.equal(await handshakeStatus(`${ws}/anonymous`), 101)
  t.equal(await handshakeStatus(`${ws}/ws`), 401)
})

t.test('a plugin registered without what it depends on fails to register', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  app.register(notify, { streams: STREAMS })
  await t.rejects(async () => { await app.ready() }, /notify-edge-bus/)
})
