// Resume by the browser alone (SPEC section 14): each event's id restores every stream of the
// response; Last-Event-ID replays what was missed, once, in order, on any instance.

import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { build, publish, token, type Edge } from './helpers.js'
import { redisServer } from './redis-server.js'
import { SseClient } from './sse-helpers.js'
import { STREAMS } from '../example-app/app.js'

const SSE_SECRET = 'an-sse-secret-that-is-at-least-32-characters'

async function open (t: Test, url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await SseClient.open(url, headers)
  t.teardown(() => client.close())
  return client
}

async function accessFor (e: Edge, user: string): Promise<string> {
  const res = await fetch(`${e.http}/sse/access`, { method: 'POST', headers: { authorization: `Bearer ${token(e.app, user)}` } })
  return ((await res.json()) as { access: string }).access
}

async function order (e: Edge, user: string, n: number): Promise<string> {
  const res = await publish(e.http, { stream: 'order', user, data: { orderId: `o${n}`, status: 'placed', n } })
  if (res.status !== 202) throw new Error(`publish ${res.status}`)
  return res.body.id as string
}

async function promo (e: Edge, n: number): Promise<string> {
  return (await publish(e.http, { stream: 'promotional', data: { n } })).body.id as string
}

/** Messages of `client` after `from`, as [stream, data.n]. */
function received (client: SseClient, from = 0): Array<[string, number]> {
  return client.events.slice(from).filter((e) => e.event === 'message').map((e) => [e.json.stream, e.json.data.n])
}

t.test('on one instance', async (t) => {
  const e = await build(t, { sse: { secret: SSE_SECRET } })
  const alice = await accessFor(e, 'alice')
  const url = `${e.http}/sse?streams=order,promotional,reward&access=${alice}`
  await publish(e.http, { stream: 'reward', user: 'alice', data: { n: 0 } })

  t.test('Last-Event-ID replays what each stream missed, in order, once; a quiet stream too', async (t) => {
    const first = await open(t, url)
    await first.next('subscribed')
    await order(e, 'alice', 1)
    await promo(e, 1)
    await first.until(() => received(first).length === 2)
    first.close()
    await first.until(() => e.app.notifyStreams.get('/sse')!.connections.size === 0)
    await order(e, 'alice', 2)
    await promo(e, 2)
    await order(e, 'alice', 3)
    await publish(e.http, { stream: 'reward', user: 'alice', data: { n: 9 } })
    const again = await open(t, url, { 'last-event-id': first.lastEventId })
    const subscribed = await again.next('subscribed')
    t.same(subscribed.json.gaps, [], 'history reaches back on every stream')
    await again.until(() => received(again).length >= 4)
    t.same(received(again), [['order', 2], ['order', 3], ['promotional', 2], ['reward', 9]], 'missed messages, per stream in order; the quiet reward stream from its position at open')
    await order(e, 'alice', 4)
    await again.until(() => received(again).length === 5)
    t.same(received(again).at(-1), ['order', 4], 'then live, nothing twice')
    t.equal(again.events.filter((ev) => ev.event === 'error').length, 0)

    const byQuery = await open(t, `${url}&lastEventId=${encodeURIComponent(again.lastEventId)}`)
    await byQuery.next('subscribed')
    await order(e, 'alice', 5)
    await byQuery.until(() => received(byQuery).length === 1)
    t.same(received(byQuery), [['order', 5]], 'lastEventId in the query works as the header, for a client that opens a new EventSource')
  })

  t.test('a malformed, forged or foreign Last-Event-ID is an error event, every stream a gap, and nobody else\'s data', async (t) => {
    const bob = await open(t, `${e.http}/sse?streams=order,promotional,reward&access=${await accessFor(e, 'bob')}`)
    await bob.next('subscribed')
    await order(e, 'bob', 100)
    await bob.until(() => received(bob).length === 1)
    const seal = bob.lastEventId.split('.')[0]
    const cases: Array<[string, string]> = [
      ['malformed', 'not-an-id'],
      ['too few positions', `${seal}.1-0`],
      ['a position that is no message id', `${seal}.x.1-0.1-0`],
      ['too long', 'a'.repeat(9000)],
      ['forged seal', `${'A'.repeat(16)}.0-1.0-1.0-1`],
      ['bob\'s own id', bob.lastEventId]
    ]
    for (const [what, id] of cases) {
      const sse = await open(t, url, { 'last-event-id': id })
      const error = await sse.next('error')
      t.equal(error.json.code, 'BAD_REQUEST', what)
      t.same((await sse.next('subscribed')).json.gaps, ['order', 'promotional', 'reward'], `${what}: every stream is a gap`)
      t.same(received(sse), [], `${what}: nothing replayed`)
      sse.close()
    }
    const wider = await open(t, `${e.http}/sse?streams=order&access=${alice}`, { 'last-event-id': bob.lastEventId })
    t.equal((await wider.next('error')).json.code, 'BAD_REQUEST', 'an id of other streams does not fit')
  })

  t.test('positions are validated, not trusted: one copied from another user\'s message selects nothing of theirs', async (t) => {
    const sse = await open(t, url)
    await sse.next('subscribed')
    const bobs = await order(e, 'bob', 200)
    const [seal] = sse.lastEventId.split('.')
    const copied = await open(t, url, { 'last-event-id': `${seal}.${bobs}..` })
    t.same((await copied.next('subscribed')).json.gaps, ['order'], 'alice\'s order topic never had that id: a gap')
    await order(e, 'alice', 201)
    await copied.until(() => received(copied).some(([s]) => s === 'order'))
    t.ok(copied.messages().every((m) => m.data.orderId !== 'o200'), 'no message of bob\'s')
  })

  t.test('a stream with no history resumes as a gap', async (t) => {
    const noHistory = await build(t, { sse: { secret: SSE_SECRET }, streams: [...STREAMS, { name: 'ticker', kind: 'public' }] })
    const sse = await open(t, `${noHistory.http}/public/sse?streams=ticker,promotional`)
    await sse.next('subscribed')
    await publish(noHistory.http, { stream: 'ticker', data: { n: 1 } })
    await sse.until(() => received(sse).length === 1)
    const again = await open(t, `${noHistory.http}/public/sse?streams=ticker,promotional`, { 'last-event-id': sse.lastEventId })
    t.same((await again.next('subscribed')).json.gaps, ['ticker'])
  })
})

t.test('on two instances sharing Redis', async (t) => {
  const server = await redisServer(t)
  const topicPrefix = `sse-${randomBytes(4).toString('hex')}`
  const opts = { redis: server.url, topicPrefix, sse: { secret: SSE_SECRET }, streams: [...STREAMS, { name: 'ticker', kind: 'public' as const }] }
  const [a, b] = await Promise.all([build(t, opts), build(t, opts)])
  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())

  t.test('a Last-Event-ID from A resumes on B, once, in order', async (t) => {
    const access = await accessFor(a, 'carol')
    const onA = await open(t, `${a.http}/sse?streams=order,promotional&access=${access}`)
    await onA.next('subscribed')
    await order(a, 'carol', 1)
    await onA.until(() => received(onA).length === 1)
    onA.close()
    for (let n = 2; n <= 6; n++) await (n % 2 === 0 ? order(b, 'carol', n) : promo(a, n))
    const onB = await open(t, `${b.http}/sse?streams=order,promotional&access=${access}`, { 'last-event-id': onA.lastEventId })
    t.same((await onB.next('subscribed')).json.gaps, [])
    await onB.until(() => received(onB).length === 5)
    t.same(received(onB), [['order', 2], ['order', 4], ['order', 6], ['promotional', 3], ['promotional', 5]])
  })

  t.test('live repair after a pub/sub drop, and gap where history cannot fill the hole', async (t) => {
    const sse = await open(t, `${b.http}/public/sse?streams=promotional,ticker`)
    await sse.next('subscribed')
    const ids: string[] = []
    for (let n = 0; n < 150; n++) {
      if (n === 50 || n === 100) await admin.client('KILL', 'TYPE', 'pubsub')
      ids.push(await promo(a, n))
    }
    await sse.until(() => received(sse).filter(([s]) => s === 'promotional').length >= 150, 15_000)
    t.same(sse.messages().filter((m) => m.stream === 'promotional').map((m) => m.id), ids, 'all 150, in order, once')
    await sse.next('gap')
    t.same(sse.events.filter((ev) => ev.event === 'gap').map((ev) => ev.json.streams)[0], ['ticker'], 'ticker keeps no history: gap')
  })
})
