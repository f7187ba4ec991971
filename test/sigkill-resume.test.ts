// Issue 24 under a real crash: three edge processes (the packaged bin) on the shared Redis, SDK
// clients on A on private, public, channel and history-less streams, ~100 messages a second
// published over HTTP on B, and A SIGKILLed with the sockets open. The clients reconnect to B or C
// and resume: every message published on a stream with history arrives exactly once and in
// order, also on streams where a client had received nothing before the kill (it resumes from
// `positions`); on the stream without history each of them is told `gap`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import WebSocket from 'ws'
import { connect, type NotifyClient, type NotifyMessage } from '../client/index.js'
import { compareMessageIds } from '../plugins/index.js'
import { serverProcess, type ExampleProcess } from './example-process.js'
import { API_KEY, SECRET, claims, publish, signJwt } from './helpers.js'
import { sharedRedis } from './redis-server.js'

const BIN = fileURLToPath(new URL('../dist/bin/fastify-notify-edge.js', import.meta.url))
const HISTORY = { size: 2000, ttl: 600 }
const STREAMS = [
  { name: 'order', kind: 'private', history: HISTORY },
  { name: 'news', kind: 'public', history: HISTORY },
  { name: 'room', kind: 'channel', openAccess: true, history: HISTORY },
  { name: 'ticker', kind: 'public' }
]
const RATE = 100
const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One SDK client and what it got: message ids per stream, the streams it was told `gap` on. */
interface Watched {
  name: string
  client: NotifyClient
  streams: string[]
  received: Map<string, string[]>
  gaps: string[]
  subscribed: Set<string>
  connects: number
}

/**
 * Where each publish goes: a stream (a channel's `room:<key>`) and, for `order`, a user. The
 * label (`order/alice`, `news`, `room:lobby`) keys what was published.
 */
interface Target { label: string, body: (n: number) => Record<string, unknown> }

const target = (label: string): Target => {
  const [stream, rest] = label.includes('/') ? label.split('/') : label.split(':')
  if (stream === 'order') return { label, body: (n) => ({ stream, user: rest, data: { n } }) }
  if (stream === 'room') return { label, body: (n) => ({ stream, key: rest, data: { n } }) }
  return { label, body: (n) => ({ stream, data: { n } }) }
}

t.test('SIGKILL of the instance holding the sockets mid-stream: every client resumes elsewhere, nothing lost or twice, gap only without history', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const dir = mkdtempSync(join(tmpdir(), 'notify-sigkill-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'streams.json'), JSON.stringify(STREAMS))
  const env = { REDIS_URL: url, TOPIC_PREFIX: prefix, STREAMS_CONFIG: join(dir, 'streams.json'), JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY }
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => serverProcess(t, process.execPath, [BIN], env))) as ExampleProcess[]

  // Reconnects wait for `release()`: what is published before it is certainly missed.
  let release!: () => void
  const away = new Promise<void>((resolve) => { release = resolve })
  // Reconnects alternate between B and C across clients.
  let moves = 0
  const watch = (name: string, user: string | null, streams: string[]): Watched => {
    const path = user === null ? '/public' : '/ws'
    let turn = 0
    const watched: Watched = { name, client: null as unknown as NotifyClient, streams, received: new Map(), gaps: [], subscribed: new Set(), connects: 0 }
    const client = connect({
      url: async () => {
        if (turn++ === 0) return `${a.ws}${path}`
        await away
        return `${moves++ % 2 === 0 ? b.ws : c.ws}${path}`
      },
      getToken: user === null ? undefined : () => signJwt(claims(user), 'HS256'),
      WebSocket,
      backoff: { min: 50, max: 500, drain: 200 }
    })
    t.teardown(() => client.close())
    client.on('connected', () => { watched.connects++ })
    client.on('subscribed', ({ streams }) => { for (const stream of streams) watched.subscribed.add(stream) })
    client.on('gap', ({ stream }) => { watched.gaps.push(stream) })
    client.on('error', () => {})
    for (const stream of streams) {
      watched.received.set(stream, [])
      client.subscribe(stream, (message: NotifyMessage) => { watched.received.get(stream)!.push(message.id) })
    }
    watched.client = client
    return watched
  }
  // bob's `order` and everything of carol's `room:quiet` get their first message only while
  // they are away: they resume from the positions of their first `subscribed`.
  const clients = [
    watch('alice', 'alice', ['order', 'news', 'room:lobby', 'ticker']),
    watch('bob', 'bob', ['order', 'news', 'room:lobby']),
    watch('carol', 'carol', ['room:quiet', 'news']),
    watch('visitor', null, ['news', 'ticker'])
  ]
  const deadline = Date.now() + 20_000
  while (!clients.every((w) => w.streams.every((s) => w.subscribed.has(s)))) {
    if (Date.now() > deadline) throw new Error('clients not subscribed on A within 20 s')
    await wait(20)
  }

  const published = new Map<string, string[]>()
  const statuses: number[] = []
  const targets = ['news', 'order/alice', 'room:lobby', 'ticker'].map(target)
  const send = async (to: Target, n: number): Promise<void> => {
    const res = await publish(b.http, to.body(n))
    statuses.push(res.status)
    if (res.status === 202) published.set(to.label, [...published.get(to.label) ?? [], res.body.id as string])
  }
  // One publish at a time, so that each stream's ids are in the order they were sent; paced at
  // RATE a second, catching up without a burst when the machine falls behind.
  const run = { on: true }
  const publisher = (async () => {
    const start = Date.now()
    for (let n = 0; run.on; n++) {
      const due = start + n * 1000 / RATE - Date.now()
      if (due > 0) await wait(due)
      await send(targets[n % targets.length], n)
    }
  })()

  await wait(1000)
  const killed = once(a.child, 'exit')
  process.kill(a.pid, 'SIGKILL')
  t.same((await killed)[1], 'SIGKILL', 'A died of SIGKILL, its sockets open')
  // Published while every client is away, to streams some never received anything on.
  for (let n = 0; n < 5; n++) for (const label of ['order/bob', 'room:quiet']) await send(target(label), 1000 + n)
  targets.push(target('order/bob'), target('room:quiet'))
  release()
  await wait(1500)
  run.on = false
  await publisher

  const expectedOf = (w: Watched, stream: string): string[] =>
    published.get(stream === 'order' ? `order/${w.name}` : stream) ?? []
  const historyStreams = (w: Watched): string[] => w.streams.filter((s) => s !== 'ticker')
  const complete = (): boolean => clients.every((w) => historyStreams(w).every((s) => w.received.get(s)!.length >= expectedOf(w, s).length))
  const settle = Date.now() + 15_000
  while (!complete() && Date.now() < settle) await wait(50)

  t.ok(statuses.every((status) => status === 202), `every one of ${statuses.length} publishes on B was accepted`)
  t.ok(statuses.length > 50, `${statuses.length} published in all, ${published.get('news')?.length} on news`)
  for (const w of clients) {
    t.ok(w.connects >= 2, `${w.name} reconnected (${w.connects} connects)`)
    for (const stream of historyStreams(w)) {
      const expected = expectedOf(w, stream)
      t.ok(expected.length > 0, `${w.name} ${stream}: ${expected.length} published`)
      t.same(w.received.get(stream), expected, `${w.name} ${stream}: all ${expected.length}, once each, in order`)
    }
    t.same(w.gaps.filter((s) => s !== 'ticker'), [], `${w.name}: no gap on a stream with history`)
  }
  for (const w of clients.filter((w) => w.streams.includes('ticker'))) {
    const got = w.received.get('ticker')!
    const sent = published.get('ticker')!
    t.ok(got.every((id, i) => i === 0 || compareMessageIds(got[i - 1], id) < 0), `${w.name} ticker: in order, none twice`)
    t.ok(got.every((id) => sent.includes(id)), `${w.name} ticker: only what was published`)
    t.ok(w.gaps.includes('ticker'), `${w.name} ticker: told gap (got ${got.length} of ${sent.length})`)
  }
  t.equal(clients.find((w) => w.name === 'bob')!.received.get('order')!.length >= 5, true, 'bob got his first orders, published while he was away')
})
