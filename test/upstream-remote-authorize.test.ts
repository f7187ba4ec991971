// A channel's `authorize` answered by a backend (SPEC section 13, hooks on a dedicated edge): a
// slow, dead or garbled backend refuses within the stream's authorizeTimeout and stalls no other
// socket; a yes is reused by the connection that got it (never a no, never by another connection).
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { loadStreams } from '../bin/config.js'
import { notifyBackend, notifyEdge, type NotifyUpstreamOptions, type StreamDefinition } from '../plugins/index.js'
import { SECRET, connectUser, urls, type Client, type Edge, type Frame } from './helpers.js'

const CALLER_SECRET = 'a-caller-secret-of-at-least-32-characters'
const DEAD = 'http://127.0.0.1:1'

/** The backend: room keys `slow-…` answer after 1.5 s; everyone but mallory may use any other key. Counts calls per user and key. */
async function roomBackend (t: Test): Promise<{ url: string, calls: Map<string, number> }> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const calls = new Map<string, number>()
  await app.register(notifyBackend, { callerSecret: CALLER_SECRET })
  app.notifyBackend.authorizeHook('/hooks/room', async (principal, target) => {
    const name = `${principal.user}@${target.stream}:${target.key}`
    calls.set(name, (calls.get(name) ?? 0) + 1)
    if (target.key?.startsWith('slow-') === true) await sleep(1500)
    return principal.user !== 'mallory'
  })
  app.post('/hooks/garbage', async (_request, reply) => reply.type('application/json').send('{"allow":"yes"}'))
  app.post('/hooks/text', async (_request, reply) => reply.type('text/plain').send('allow'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { url: urls(app).http, calls }
}

async function edgeApp (t: Test, streams: StreamDefinition[], upstream: NotifyUpstreamOptions = { backend: { callerSecret: CALLER_SECRET } }): Promise<Edge> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams, upstream })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

let subscribes = 0

/** The frame answering a subscribe to `name` (its `error`, or else `subscribed`), and how long it took. */
async function subscribeTo (client: Client, name: string): Promise<{ frame: Frame, ms: number }> {
  const id = `s${++subscribes}`
  const started = performance.now()
  client.send({ event: 'subscribe', streams: [name], id })
  // A refused item is an `error` frame before the `subscribed` that closes the frame's answer.
  const first = await client.next((f) => f.id === id, 5000)
  const ms = performance.now() - started
  if (first.event === 'error') await client.next((f) => f.id === id && f.event === 'subscribed')
  return { frame: first, ms }
}

async function unsubscribe (client: Client, name: string): Promise<void> {
  await client.request({ event: 'unsubscribe', streams: [name] }, 'unsubscribed')
}

function rooms (url: string): StreamDefinition[] {
  return [
    { name: 'room', kind: 'channel', authorize: { url: `${url}/hooks/room` }, authorizeTimeout: 400, clientPublish: true },
    { name: 'brief', kind: 'channel', authorize: { url: `${url}/hooks/room`, cacheTtl: 300 } },
    { name: 'nocache', kind: 'channel', authorize: { url: `${url}/hooks/room`, cacheTtl: 0 } },
    { name: 'dead', kind: 'channel', authorize: { url: `${DEAD}/hooks/room` }, authorizeTimeout: 3000 },
    { name: 'garbage', kind: 'channel', authorize: { url: `${url}/hooks/garbage` } },
    { name: 'text', kind: 'channel', authorize: { url: `${url}/hooks/text` } }
  ]
}

t.test('a slow backend refuses at the timeout while another socket is answered at once; a dead or garbled one refuses', async (t) => {
  const { url } = await roomBackend(t)
  const edge = await edgeApp(t, rooms(url))
  const alice = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')

  const slow = subscribeTo(alice, 'room:slow-1')
  const fast = await subscribeTo(bob, 'room:lobby')
  t.equal(fast.frame.event, 'subscribed', 'bob is let in')
  const late = await slow
  t.ok(fast.ms < late.ms, `bob's subscribe (${Math.round(fast.ms)} ms) is answered before alice's slow one`)
  t.match(late.frame, { event: 'error', code: 'FORBIDDEN', stream: 'room:slow-1' })
  t.ok(late.ms >= 350 && late.ms < 400 + 600, `refused at the 400 ms timeout, not at the backend's 1.5 s (${Math.round(late.ms)} ms)`)

  const dead = await subscribeTo(alice, 'dead:lobby')
  t.match(dead.frame, { event: 'error', code: 'FORBIDDEN' })
  t.ok(dead.ms < 1500, `a closed port refuses at once, not at the 3 s timeout (${Math.round(dead.ms)} ms)`)
  for (const name of ['garbage:lobby', 'text:lobby']) {
    t.match((await subscribeTo(alice, name)).frame, { event: 'error', code: 'FORBIDDEN' }, `${name}: an answer that is not { "allow": true } refuses`)
  }
  t.equal((await subscribeTo(alice, 'room:lobby')).frame.event, 'subscribed', 'alice\'s socket still works')
})

t.test('a yes is reused by its connection for cacheTtl; a no never is, nor by another connection', async (t) => {
  const { url, calls } = await roomBackend(t)
  const edge = await edgeApp(t, rooms(url))
  const alice = await connectUser(t, edge, 'alice')
  t.equal((await subscribeTo(alice, 'room:lobby')).frame.event, 'subscribed')
  await unsubscribe(alice, 'room:lobby')
  t.equal((await subscribeTo(alice, 'room:lobby')).frame.event, 'subscribed')
  const sent = await alice.request({ event: 'publish', stream: 'room:lobby', data: { text: 'hi' } }, 'published')
  t.ok(sent.message, 'and publishes')
  t.equal(calls.get('alice@room:lobby'), 1, 'one call for a subscribe, a subscribe again and a publish on one connection')

  const again = await connectUser(t, edge, 'alice')
  t.equal((await subscribeTo(again, 'room:lobby')).frame.event, 'subscribed')
  t.equal(calls.get('alice@room:lobby'), 2, 'another connection of the same user asks for itself')
  const bob = await connectUser(t, edge, 'bob')
  t.equal((await subscribeTo(bob, 'room:lobby')).frame.event, 'subscribed')
  t.equal(calls.get('bob@room:lobby'), 1)

  const mallory = await connectUser(t, edge, 'mallory')
  t.match((await subscribeTo(mallory, 'room:lobby')).frame, { event: 'error', code: 'FORBIDDEN' })
  t.match((await subscribeTo(mallory, 'room:lobby')).frame, { event: 'error', code: 'FORBIDDEN' })
  mallory.send({ event: 'publish', stream: 'room:lobby', data: { text: 'spam' }, id: 'p' })
  t.match(await mallory.next((f) => f.id === 'p'), { event: 'error', code: 'FORBIDDEN' }, 'who may not read may not publish')
  t.equal(calls.get('mallory@room:lobby'), 3, 'a no is asked again every time')

  t.equal((await subscribeTo(alice, 'nocache:a')).frame.event, 'subscribed')
  await unsubscribe(alice, 'nocache:a')
  t.equal((await subscribeTo(alice, 'nocache:a')).frame.event, 'subscribed')
  t.equal(calls.get('alice@nocache:a'), 2, 'cacheTtl 0 keeps nothing')

  t.equal((await subscribeTo(alice, 'brief:a')).frame.event, 'subscribed')
  await unsubscribe(alice, 'brief:a')
  await sleep(400)
  t.equal((await subscribeTo(alice, 'brief:a')).frame.event, 'subscribed')
  t.equal(calls.get('alice@brief:a'), 2, 'a yes older than cacheTtl is asked again')
})

t.test('a backend URL as authorize or clientPublish is checked at registration; STREAMS_CONFIG may name one', async (t) => {
  const bad: Array<[string, unknown, NotifyUpstreamOptions | false | undefined]> = [
    ['not http', { name: 'r', kind: 'channel', authorize: { url: 'ftp://x/y' } }, undefined],
    ['a text URL', { name: 'r', kind: 'channel', authorize: 'http://127.0.0.1:1/x' }, undefined],
    ['on a public stream', { name: 'r', kind: 'public', authorize: { url: 'http://127.0.0.1:1/x' } }, undefined],
    ['a negative cacheTtl', { name: 'r', kind: 'channel', authorize: { url: 'http://127.0.0.1:1/x', cacheTtl: -1 } }, undefined],
    ['an unknown field', { name: 'r', kind: 'channel', authorize: { url: 'http://127.0.0.1:1/x', ttl: 5 } }, undefined],
    ['with openAccess too', { name: 'r', kind: 'channel', openAccess: true, authorize: { url: 'http://127.0.0.1:1/x' } }, undefined],
    ['a bad clientPublish url', { name: 'r', kind: 'public', clientPublish: { url: 'nope' } }, undefined],
    ['no caller secret', { name: 'r', kind: 'channel', authorize: { url: 'http://127.0.0.1:1/x' } }, {}],
    ['nothing to ask it', { name: 'r', kind: 'channel', authorize: { url: 'http://127.0.0.1:1/x' } }, false]
  ]
  for (const [what, stream, upstream] of bad) {
    const app = Fastify({ logger: false })
    const options = { jwt: { secret: SECRET }, streams: [stream as StreamDefinition], upstream: upstream ?? { backend: { callerSecret: CALLER_SECRET } } }
    const err = await app.register(notifyEdge, options).ready().then(() => null, (e: { code?: string }) => e)
    t.equal(err?.code, 'FST_NOTIFY_INVALID_OPTION', what)
    await app.close()
  }

  const dir = await mkdtemp(join(tmpdir(), 'notify-edge-remote-'))
  const good = [{ name: 'room', kind: 'channel', authorize: { url: 'http://orders:3002/hooks/rooms', cacheTtl: 10000 }, clientPublish: { url: 'http://orders:3002/hooks/say' } }]
  await writeFile(join(dir, 'good.json'), JSON.stringify(good))
  await writeFile(join(dir, 'bad.json'), JSON.stringify([{ name: 'room', kind: 'channel', authorize: { url: 'orders' } }]))
  t.same(await loadStreams(join(dir, 'good.json')), good, 'a JSON streams file names the backend')
  await t.rejects(loadStreams(join(dir, 'bad.json')), /STREAMS_CONFIG .*authorize\.url must be an http\(s\) URL/)
})

t.test('clientPublish as { url } asks the backend\'s publish hook', async (t) => {
  const backend: FastifyInstance = Fastify({ logger: false })
  t.teardown(() => backend.close())
  await backend.register(notifyBackend, { callerSecret: CALLER_SECRET })
  backend.notifyBackend.publishHook('/hooks/say', (principal, _target, data) => ({ allow: true, data: { ...data as object, checkedFor: principal.user } }))
  await backend.listen({ port: 0, host: '127.0.0.1' })
  const edge = await edgeApp(t, [{ name: 'lobby', kind: 'public', clientPublish: { url: `${urls(backend).http}/hooks/say` } }])
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('lobby')
  await alice.request({ event: 'publish', stream: 'lobby', data: { text: 'hi' } }, 'published')
  t.same((await alice.event('message')).data, { text: 'hi', checkedFor: 'alice' })
})
