import Fastify from 'fastify'
import t from 'tap'
import { defineStreams, notifyEdge } from '../plugins/index.js'
import { METHODS, chatHook, orderRoutes } from './abstract/upstream-targets.js'
import { SECRET, connectUser, prng, publish, urls, watchProcessFailures, type Frame } from './helpers.js'

const FRAMES = 10_000

function hostileFrames (random: () => number): Array<() => string> {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
  const streams = ['chat', 'moderated', 'news', 'order', 'chat:#', 'chat:+', 'chat:bob', 'order:bob', '#', '+', '*', 'notify/p/chat', '__proto__', '', 'x'.repeat(300), 7, null, ['chat'], { stream: 'chat' }]
  const data = (): unknown => pick<() => unknown>([
    () => ({ text: 'hi' }),
    () => ({ text: 'bad word' }),
    () => 'x'.repeat(Math.floor(random() * 40_000)),
    () => null,
    () => [1, 2, { from: 'bob' }],
    () => ({ from: 'bob', user: 'bob', users: ['bob'], text: 'spoof' }),
    () => 1e308,
    () => undefined
  ])()
  const methods = ['orders.place', 'orders.list', 'whoami', 'nope', '', '__proto__', 'constructor', 'x'.repeat(200), 5, null, 'orders.cancel']
  return [
    () => JSON.stringify({ event: 'publish', stream: pick(streams), data: data(), id: pick(['a', 1, undefined, 'y'.repeat(200), { x: 1 }]) }),
    () => JSON.stringify({ event: 'publish', stream: pick(['chat', 'moderated']), data: data(), id: 'p', from: pick(['bob', 'alice', '']) }),
    () => JSON.stringify({ event: 'publish', stream: 'chat', data: data(), user: 'bob', key: 'lobby', users: ['bob'] }),
    () => JSON.stringify({ event: 'publish', stream: pick(streams), data: data(), idempotencyKey: pick(['k1', '', 'z'.repeat(200), 5, '\u0000', 'k2']) }),
    () => JSON.stringify({ event: 'rpc', method: pick(methods), data: data(), id: pick(['r', 2, undefined]) }),
    () => JSON.stringify({ event: 'rpc', method: pick(methods), data: { item: pick(['tea', 5, null]), orderId: pick(['bob-1', '../x', { a: 1 }]) }, id: 'r' }),
    () => JSON.stringify({ event: 'rpc', method: 'orders.list', data: { limit: pick(['1', '-1', 'NaN', '1e9']) }, id: 'l', extra: true }),
    () => `{"event":"publish","stream":"chat","data":${pick(['1e400', '{"a":', '[', '"\\ud800"', 'NaN'])},"id":"j"}`,
    () => `{"event":"rpc","method":"whoami","id":${pick(['1e400', 'true', '[]', '"ok"'])}}`
  ]
}

t.test('10,000 random and malformed publish and rpc frames: error frames, nothing leaks, the process stays up', async (t) => {
  const failures = watchProcessFailures(t)
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const streams = defineStreams([
    { name: 'chat', kind: 'public', clientPublish: true },
    { name: 'moderated', kind: 'public', clientPublish: chatHook },
    { name: 'news', kind: 'public' },
    { name: 'order', kind: 'private' }
  ])
  const generous = { frameRate: { perSecond: 1_000_000, burst: 1_000_000 }, maxBadFrames: 1_000_000 }
  const huge = { perSecond: 1_000_000, burst: 1_000_000 }
  await app.register(notifyEdge, {
    jwt: { secret: SECRET },
    streams,
    routes: [{ path: '/ws', ...generous }],
    publishApi: { apiKey: 'test-api-key-0123456789' },
    upstream: { methods: METHODS, publishRate: huge, userPublishRate: huge, rpcTimeout: 2000, hookTimeout: 2000 }
  })
  await app.register(orderRoutes)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const edge = { app, ...urls(app) }

  const alice = await connectUser(t, edge, 'mallory')
  const bob = await connectUser(t, edge, 'bob')
  await bob.subscribe('chat', 'moderated', 'news', 'order')
  const random = prng(26)
  const makers = hostileFrames(random)
  for (let i = 0; i < FRAMES; i++) {
    alice.send(makers[Math.floor(random() * makers.length)]())
    // Let the server breathe now and then, as a socket's reader would.
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve))
  }
  // Every frame is answered exactly once: wait for the last answers.
  const answered = (f: Frame): boolean => f.event === 'error' || f.event === 'published' || f.event === 'result'
  const deadline = Date.now() + 60_000
  while (alice.frames.filter(answered).length < FRAMES && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const answers = alice.frames.filter(answered)
  t.equal(answers.length, FRAMES, 'one answer per frame')
  const published = answers.filter((f) => f.event === 'published')
  t.ok(published.length > 100, `some publishes went through (${published.length})`)
  t.ok(answers.some((f) => f.event === 'result'), 'some calls went through')
  const codes = new Set(answers.filter((f) => f.event === 'error').map((f) => f.code))
  t.ok(['BAD_REQUEST', 'FORBIDDEN', 'UNKNOWN_STREAM', 'UNKNOWN_METHOD', 'RPC_FAILED'].every((c) => codes.has(c)), [...codes].join(','))
  t.notOk(codes.has('INTERNAL'), 'no internal errors')

  // Bob hears a message for every accepted publish and nothing else: all from mallory, none private.
  await publish(edge.http, { stream: 'news', data: { end: true } })
  const seen: Frame[] = []
  for (;;) {
    const message = await bob.event('message', 10_000)
    if (message.stream === 'news') break
    seen.push(message)
  }
  // A replayed idempotency key answers with the first publish's id, and delivers nothing again.
  t.equal(seen.length, published.filter((p) => p.replayed !== true).length, 'exactly the accepted publishes were delivered')
  t.ok(seen.every((m) => m.from === 'mallory' && (m.stream === 'chat' || m.stream === 'moderated')), 'from is always the sender')
  t.same(new Set(seen.map((m) => m.id)), new Set(published.map((p) => p.message)), 'the acknowledged ids')
  t.ok(seen.every((m) => !(m.data?.text === 'bad word' && m.stream === 'moderated')), 'refused by the hook: never delivered')

  // Still up, and still serving both.
  alice.send({ event: 'publish', stream: 'chat', data: { ok: true }, id: 'last' })
  t.equal((await alice.next((f) => f.id === 'last')).event, 'published')
  t.same(failures, [], 'no unhandled rejection or exception')
})
