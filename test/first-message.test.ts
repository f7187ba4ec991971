import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { connect, type NotifyClient } from '../client/index.js'
import { defineStreams, MemoryHistoryStore } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, connectUser, publish, ticket, token, type Edge } from './helpers.js'
import { Recorder, serverConnections } from './client-helpers.js'
import { sharedRedis } from './redis-server.js'

// The first-message window (SPEC section 6): a client that has received nothing yet on a stream
// still resumes from where the stream stood when it subscribed (`positions` in `subscribed`), so
// after a reconnect it has every message published meanwhile; on a stream without history it is
// told `gap`. Each way of losing a socket: a drain (1001), a network drop, an expired credential
// (4001); private and public streams; an authenticated and an anonymous client.

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const streams = defineStreams([...STREAMS, { name: 'live', kind: 'public' }, { name: 'nudge', kind: 'private' }])

interface Pair { a: Edge, b: Edge }

async function pair (t: Test): Promise<Pair> {
  const { url, prefix } = await sharedRedis(t)
  const a = await build(t, { redis: url, topicPrefix: prefix, streams })
  const b = await build(t, { redis: url, topicPrefix: prefix, streams })
  return { a, b }
}

/**
 * An SDK client that connects to A first and to B afterwards, and whose reconnect waits for
 * `release()`: what is published before that is published while it is away, certainly.
 */
function awayClient (t: Test, { a, b }: Pair, user: string | null, expiresIn: string = '1h'): { client: NotifyClient, events: Recorder, release: () => void } {
  let connects = 0
  let release!: () => void
  const away = new Promise<void>((resolve) => { release = resolve })
  const path = user === null ? '/public' : '/ws'
  const client = connect({
    url: async () => {
      if (connects++ === 0) return `${a.ws}${path}`
      await away
      return `${b.ws}${path}`
    },
    getTicket: user === null ? undefined : () => ticket(b.http, token(b.app, user, expiresIn)),
    WebSocket,
    backoff: { min: 20, max: 200, drain: 200 }
  })
  t.teardown(() => client.close())
  return { client, events: new Recorder(client), release }
}

type Loss = 'drain (1001)' | 'network drop' | 'expiry (4001)'

async function lose (t: Test, how: Loss, { a }: Pair, recorders: Recorder[]): Promise<void> {
  if (how === 'drain (1001)') await a.app.close()
  if (how === 'network drop') {
    for (const path of ['/ws', '/public']) for (const connection of serverConnections(a.app, path)) connection.socket.terminate()
  }
  const code = { 'drain (1001)': 1001, 'network drop': 1006, 'expiry (4001)': 4001 }[how]
  for (const events of recorders) t.match(await events.next('disconnected', () => true, 8000), { code, willRetry: true })
}

for (const how of ['drain (1001)', 'network drop', 'expiry (4001)'] as const) {
  t.test(`after a ${how}, a client that had received nothing gets what was published while it was away, or gap`, async (t) => {
    const edges = await pair(t)
    const users = ['alice', 'bob']
    const clients = users.map((user) => awayClient(t, edges, user, how === 'expiry (4001)' ? '2s' : '1h'))
    // An anonymous socket has no credential to expire.
    const anonymous = how === 'expiry (4001)' ? null : awayClient(t, edges, null)
    for (const { events } of clients) for (const stream of ['order', 'promotional', 'live', 'nudge']) events.subscribe(stream)
    for (const stream of ['promotional', 'live']) anonymous?.events.subscribe(stream)
    const all = anonymous === null ? clients : [...clients, anonymous]
    for (const { events } of all) await events.next('connected')

    await lose(t, how, edges, all.map((c) => c.events))
    const { b } = edges
    const missed = new Map<string, string>()
    for (const user of users) {
      missed.set(`order/${user}`, (await publish(b.http, { stream: 'order', user, data: { orderId: user, status: 'placed' } })).body.id as string)
      await publish(b.http, { stream: 'nudge', user, data: { n: 1 } })
    }
    missed.set('promotional', (await publish(b.http, { stream: 'promotional', data: { text: 'sale' } })).body.id as string)
    await publish(b.http, { stream: 'live', data: { n: 1 } })
    for (const { release } of all) release()

    for (const [i, { events }] of clients.entries()) {
      await events.next('connected', () => true, 8000)
      const messages = [await events.next('message'), await events.next('message')]
      t.same(messages.map((m) => [m.stream, m.id]).sort(), [['order', missed.get(`order/${users[i]}`)], ['promotional', missed.get('promotional')]].sort(),
        `${users[i]} got the messages of its history streams published while away`)
      const gaps = [await events.next('gap'), await events.next('gap')].map((g) => g.stream).sort()
      t.same(gaps, ['live', 'nudge'], 'and is told gap on its streams without history')
    }
    if (anonymous !== null) {
      await anonymous.events.next('connected', () => true, 8000)
      t.equal((await anonymous.events.next('message')).id, missed.get('promotional'), 'the anonymous client too')
      t.same(await anonymous.events.next('gap'), { stream: 'live' })
    }

    // Live again, and nothing twice.
    const next = await publish(b.http, { stream: 'promotional', data: { text: 'again' } })
    for (const { events } of all) {
      t.equal((await events.next('message')).id, next.body.id)
      t.same(events.taken('message'), [], 'nothing shown twice')
      t.same(events.taken('gap'), [])
    }
  })
}

t.test('a client that received messages before it went away resumes from the last one, as before', async (t) => {
  const edges = await pair(t)
  const { events, release } = awayClient(t, edges, 'alice')
  events.subscribe('order')
  await events.next('connected')
  const seen = await publish(edges.a.http, { stream: 'order', user: 'alice', data: { orderId: '1', status: 'placed' } })
  t.equal((await events.next('message')).id, seen.body.id)
  await lose(t, 'drain (1001)', edges, [events])
  const missed = await publish(edges.b.http, { stream: 'order', user: 'alice', data: { orderId: '1', status: 'paid' } })
  release()
  await events.next('connected', () => true, 8000)
  t.equal((await events.next('message')).id, missed.body.id)
  t.same(events.taken('message'), [])
  t.same(events.taken('gap'), [])
})

t.test('subscribed gives each history stream\'s position: its latest id, or 0-0 while empty', async (t) => {
  const edges = await pair(t)
  const first = await publish(edges.b.http, { stream: 'reward', user: 'carol', data: { points: 1 } })
  const carol = await connectUser(t, edges.a, 'carol')
  carol.send({ event: 'subscribe', streams: ['reward', 'order', 'live'], id: 'p' })
  t.same((await carol.event('subscribed')).positions, { reward: first.body.id, order: '0-0' }, 'none for a stream without history')
  carol.send({ event: 'subscribe', streams: ['reward'], id: 'q' })
  t.same(await carol.event('subscribed'), { event: 'subscribed', streams: ['reward'], id: 'q' }, 'none for a stream it already receives')
  carol.send({ event: 'subscribe', streams: [{ stream: 'promotional', since: '0-0' }], id: 'r' })
  t.same(await carol.event('subscribed'), { event: 'subscribed', streams: ['promotional'], id: 'r', gaps: [] }, 'since 0-0 on an empty stream: complete')
})

t.test('several URLs: each connect takes the next, so a client fails over from a dead instance', async (t) => {
  const { a, b } = await pair(t)
  const { port } = a.app.server.address() as AddressInfo
  await a.app.close()
  const client = connect({
    url: [`ws://127.0.0.1:${port}/ws`, `${b.ws}/ws`],
    getTicket: () => ticket(b.http, token(b.app, 'erin')),
    WebSocket,
    backoff: { min: 20, max: 100 }
  })
  t.teardown(() => client.close())
  const events = new Recorder(client)
  events.subscribe('order')
  await events.next('connected', () => true, 5000)
  const sent = await publish(b.http, { stream: 'order', user: 'erin', data: { orderId: 'e', status: 'placed' } })
  t.equal((await events.next('message')).id, sent.body.id)
})

t.test('a URL function that fails is reported and asked again', async (t) => {
  const { b } = await pair(t)
  let calls = 0
  const client = connect({
    url: () => ++calls === 1 ? 'ftp://nowhere/ws' : `${b.ws}/ws`,
    getTicket: () => ticket(b.http, token(b.app, 'finn')),
    WebSocket,
    backoff: { min: 20, max: 100 }
  })
  t.teardown(() => client.close())
  const events = new Recorder(client)
  t.match(await events.next('error'), { code: 'NOTIFY_CLIENT_CREDENTIAL_FAILED' })
  await events.next('connected', () => true, 5000)
  t.equal(calls, 2)
})

/** A memory history whose `latest` fails: a history that does not answer a subscribe's position. */
class NoPositionStore extends MemoryHistoryStore {
  override async latest (): Promise<string> {
    throw new Error('history is down')
  }
}

t.test('a history that cannot give a position leaves it out, and the socket lives on', async (t) => {
  const store = new NoPositionStore()
  t.teardown(() => store.close())
  const edge = await build(t, { streams, history: { store } })
  const gina = await connectUser(t, edge, 'gina')
  gina.send({ event: 'subscribe', streams: ['order', 'live'], id: 'p' })
  t.same(await gina.event('subscribed'), { event: 'subscribed', streams: ['order', 'live'], id: 'p' }, 'no positions')
  const sent = await publish(edge.http, { stream: 'order', user: 'gina', data: { orderId: 'g', status: 'placed' } })
  t.equal((await gina.event('message')).id, sent.body.id, 'live delivery works')
})
