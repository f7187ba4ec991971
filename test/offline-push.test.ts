import t from 'tap'
import webpush from 'web-push'
import type { FastifyInstance } from 'fastify'
import { API_KEY, build, connectUser, publish, token, type Edge } from './helpers.js'
import { pushService, type PushService } from './push-service.js'
import type { Test } from './abstract/store-suite.js'
import type { NotifyEdgeOptions, NotifyOfflineOptions, OfflineMessage, PushSubscriptionJSON } from '../plugins/index.js'

const vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@shop.example' }

interface Setup { edge: Edge, svc: PushService, offline: Array<{ users: string[], message: OfflineMessage }> }

async function setup (t: Test, offline: Partial<NotifyOfflineOptions> = {}, push: Partial<NonNullable<NotifyOfflineOptions['push']>> = {}, more: Partial<NotifyEdgeOptions> = {}): Promise<Setup> {
  const svc = await pushService(t, vapid.publicKey, vapid.subject)
  const heard: Setup['offline'] = []
  const edge = await build(t, {
    onOffline: (users, message) => { heard.push({ users, message }) },
    offline: {
      streams: { order: {} },
      push: { vapid, agent: svc.agent, allowedEndpointHosts: [svc.host], ...push },
      retry: { baseDelay: 20, maxDelay: 100 },
      ...offline
    },
    metrics: {},
    ...more
  })
  return { edge, svc, offline: heard }
}

async function register (edge: Edge, user: string, subscription: unknown, method = 'POST'): Promise<{ status: number, body: any }> {
  const res = await fetch(`${edge.http}/push/subscriptions`, {
    method,
    headers: { authorization: `Bearer ${token(edge.app, user)}`, 'content-type': 'application/json' },
    body: JSON.stringify(subscription)
  })
  return { status: res.status, body: res.status === 204 ? null : await res.json() }
}

const order = (id: string): { orderId: string, status: string } => ({ orderId: id, status: 'placed' })

async function metric (app: FastifyInstance, name: string): Promise<string[]> {
  return (await app.notifyMetrics.registry.metrics()).split('\n').filter((line) => line.startsWith(`notify_edge_${name}`))
}

t.test('an offline user gets the message frame by Web Push: aes128gcm, VAPID-signed, and onOffline says it went by push', async (t) => {
  const { edge, svc, offline } = await setup(t)
  t.same(await register(edge, 'bob', svc.subscription('bob-phone')), { status: 201, body: { subscriptions: 1 } })
  const { status, body } = await publish(edge.http, { stream: 'order', user: 'bob', data: order('o1') })
  t.same([status, body.online], [202, false])
  const [push] = await svc.waitFor(1)
  t.same(svc.errors, [], 'decrypted with the subscription keys, VAPID verified against the public key')
  t.same(JSON.parse(push.payload), { event: 'message', stream: 'order', id: body.id, ts: Number((body.id as string).split('-')[0]), data: order('o1') })
  t.equal(push.headers['content-encoding'], 'aes128gcm')
  t.ok(Number(push.headers.ttl) > 86300 && Number(push.headers.ttl) <= 86400, 'TTL: the stream\'s, less the time since publish')
  t.equal(push.vapid.aud, svc.origin)
  await edge.app.notifyOffline.idle()
  t.same(offline, [{ users: ['bob'], message: { stream: 'order', data: order('o1'), ids: [body.id], fallback: { bob: 'push' } } }])
  t.same(edge.app.notifyOffline.stats.push, { sent: 1, failed: 0, retried: 0, duplicate: 0 })
  t.same(await metric(edge.app, 'offline_deliveries_total{channel="push",outcome="sent"}'), ['notify_edge_offline_deliveries_total{channel="push",outcome="sent"} 1'])
})

t.test('online users get no push; one push per subscription of each offline user', async (t) => {
  const { edge, svc } = await setup(t)
  await register(edge, 'alice', svc.subscription('alice-laptop'))
  await register(edge, 'bob', svc.subscription('bob-phone'))
  await register(edge, 'bob', svc.subscription('bob-laptop'))
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const { body } = await publish(edge.http, { stream: 'order', users: ['alice', 'bob'], data: order('o2') })
  t.same(body.offline, ['bob'])
  await alice.event('message')
  await edge.app.notifyOffline.idle()
  t.same(svc.received.map((push) => push.name).sort(), ['bob-laptop', 'bob-phone'])
  t.ok(svc.received.every((push) => JSON.parse(push.payload).id === (body.ids as string[])[1]))
  t.equal(new Set(svc.received.map((push) => push.headers.authorization)).size, 1, 'one VAPID token signed per push service origin, reused')
})

t.test('a 404 or 410 removes the subscription; other subscriptions still get the push', async (t) => {
  const { edge, svc } = await setup(t)
  await register(edge, 'bob', svc.subscription('gone'))
  await register(edge, 'bob', svc.subscription('unknown'))
  await register(edge, 'bob', svc.subscription('fine'))
  svc.behave('gone', { status: 410 })
  svc.behave('unknown', { status: 404 })
  await publish(edge.http, { stream: 'order', user: 'bob', data: order('o3') })
  await svc.waitFor(3)
  await edge.app.notifyOffline.idle()
  t.same((await edge.app.notifyOffline.subscriptions!.list('bob')).map((s) => s.endpoint), [`${svc.origin}/push/fine`])
  t.equal(edge.app.notifyOffline.stats.subscriptionsRemoved, 2)
  t.same(await metric(edge.app, 'push_subscriptions_removed_total'), ['notify_edge_push_subscriptions_removed_total 2'])
  await publish(edge.http, { stream: 'order', user: 'bob', data: order('o4') })
  await edge.app.notifyOffline.idle()
  t.same(svc.received.slice(3).map((push) => push.name), ['fine'], 'the removed ones are not tried again')
})

t.test('429 and 5xx are retried with backoff, honouring Retry-After', async (t) => {
  const { edge, svc } = await setup(t)
  await register(edge, 'bob', svc.subscription('throttled'))
  await register(edge, 'bob', svc.subscription('flaky'))
  svc.behave('throttled', { status: 429, headers: { 'retry-after': '1' } })
  svc.behave('flaky', { status: 503 }, { status: 502 })
  await publish(edge.http, { stream: 'order', user: 'bob', data: order('o5') })
  await svc.waitFor(5)
  await edge.app.notifyOffline.idle()
  const throttled = svc.received.filter((push) => push.name === 'throttled').map((push) => push.attempt)
  const flaky = svc.received.filter((push) => push.name === 'flaky').map((push) => push.attempt)
  t.same([throttled, flaky], [[1, 2], [1, 2, 3]])
  t.equal(new Set(svc.received.map((push) => push.payload)).size, 1, 'every attempt carries the same message')
  t.same(edge.app.notifyOffline.stats.push, { sent: 2, failed: 0, retried: 3, duplicate: 0 })
})

t.test('a Retry-After past the message TTL, or too many attempts, gives up', async (t) => {
  const { edge, svc } = await setup(t, { streams: { order: { ttl: 2 } }, retry: { attempts: 2, baseDelay: 10 } })
  await register(edge, 'bob', svc.subscription('later'))
  await register(edge, 'bob', svc.subscription('down'))
  svc.behave('later', { status: 429, headers: { 'retry-after': '60' } })
  svc.behave('down', { status: 500 }, { status: 500 }, { status: 500 })
  await publish(edge.http, { stream: 'order', user: 'bob', data: order('o6') })
  await svc.waitFor(3)
  await edge.app.notifyOffline.idle()
  t.same(svc.received.map((push) => `${push.name}#${push.attempt}`).sort(), ['down#1', 'down#2', 'later#1'])
  t.same(edge.app.notifyOffline.stats.push, { sent: 0, failed: 2, retried: 1, duplicate: 0 })
})

t.test('a push service that hangs costs the publish nothing and is given up after the timeout', async (t) => {
  const { edge, svc } = await setup(t, {}, { timeout: 300 })
  await register(edge, 'bob', svc.subscription('stuck'))
  svc.behave('stuck', 'hang')
  const { status, body } = await publish(edge.http, { stream: 'order', user: 'bob', data: order('o7') })
  t.same([status, body.online], [202, false], 'answered while the push is still to be sent')
  await svc.waitFor(1)
  await edge.app.notifyOffline.idle()
  t.same(edge.app.notifyOffline.stats.push, { sent: 0, failed: 1, retried: 0, duplicate: 0 }, 'a timeout is not retried: it may have been delivered')
})

t.test('a payload over the limit goes out as the truncated stand-in', async (t) => {
  const { edge, svc } = await setup(t, {}, { maxPayload: 200 })
  await register(edge, 'bob', svc.subscription('small'))
  const { body } = await publish(edge.http, { stream: 'order', user: 'bob', data: { orderId: 'x'.repeat(300), status: 'placed' } })
  const [push] = await svc.waitFor(1)
  t.same(JSON.parse(push.payload), { event: 'message', stream: 'order', id: body.id, truncated: true })
})

t.test('the same message handed over twice, or a publish retried with its idempotency key, is pushed once', async (t) => {
  const { edge, svc } = await setup(t)
  await register(edge, 'bob', svc.subscription('once'))
  const { body } = await publish(edge.http, { stream: 'order', user: 'bob', data: order('o8') })
  const heard = { stream: 'order', data: order('o8'), ids: [body.id as string] }
  edge.app.notifyOfflineHandoff!(['bob'], heard, () => {})
  const headers = { 'content-type': 'application/json', 'x-api-key': API_KEY, 'idempotency-key': 'order-o9-placed' }
  const send = (): Promise<Response> => fetch(`${edge.http}/notifications`, { method: 'POST', headers, body: JSON.stringify({ stream: 'order', user: 'bob', data: order('o9') }) })
  const [first, again] = [await send(), await send()]
  t.equal(again.headers.get('idempotent-replayed'), 'true')
  t.same(await again.json(), await first.json())
  await edge.app.notifyOffline.idle()
  t.same(svc.received.map((push) => JSON.parse(push.payload).data.orderId), ['o8', 'o9'])
  t.equal(edge.app.notifyOffline.stats.push.duplicate, 1)
})

t.test('1,000 offline users in one publish: it answers before any offline work, and pushes go out with bounded concurrency', async (t) => {
  let asked = 0
  const { edge, svc } = await setup(t, { concurrency: 8, preference: () => { asked++; return 'push' } })
  const subscription = svc.subscription('shared')
  const users = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
  for (const user of users) await edge.app.notifyOffline.subscriptions!.add(user, subscription, 10)
  svc.holdAll = true
  const result = await edge.app.notify.publish({ stream: 'order', users, data: order('bulk') })
  t.equal(result.offline?.length, 1000)
  t.same([asked, svc.received.length, edge.app.notifyOffline.running()], [0, 0, 0], 'answered before a preference was asked or a push started')
  await svc.waitOpen(8)
  t.equal(edge.app.notifyOffline.running(), 8)
  t.equal(svc.open, 8, 'the ninth waits for a slot')
  svc.holdAll = false
  svc.release()
  await svc.waitFor(1000, 60_000)
  await edge.app.notifyOffline.idle()
  t.equal(svc.maxOpen, 8, 'never more than `concurrency` requests at once')
  t.equal(new Set(svc.received.map((push) => JSON.parse(push.payload).id)).size, 1000, 'one push per user copy')
  t.same(svc.errors, [])
})

t.test('preferences: none sends nothing, a failing or unknown answer falls back to push, email without e-mail configured is none', async (t) => {
  const choices: Record<string, unknown> = { quiet: 'none', broken: 'throws', odd: 'carrier-pigeon', mail: 'email' }
  const { edge, svc, offline } = await setup(t, {
    preference: (user) => {
      if (choices[user] === 'throws') throw new Error('preferences service down')
      return choices[user] as 'push'
    }
  })
  for (const user of Object.keys(choices)) await register(edge, user, svc.subscription(user))
  await publish(edge.http, { stream: 'order', users: Object.keys(choices), data: order('o10') })
  await edge.app.notifyOffline.idle()
  t.same(offline[0].message.fallback, { quiet: 'none', broken: 'push', odd: 'push', mail: 'none' })
  t.same(svc.received.map((push) => push.name).sort(), ['broken', 'odd'])
})

t.test('streams without an offline fallback, and publishes with everyone online, hand nothing over', async (t) => {
  const { edge, svc, offline } = await setup(t)
  await register(edge, 'bob', svc.subscription('bob'))
  await publish(edge.http, { stream: 'reward', user: 'bob', data: { points: 5 } })
  await edge.app.notifyOffline.idle()
  t.same(offline.map((o) => [o.users, o.message.fallback]), [[['bob'], undefined]], 'onOffline still hears, without a fallback')
  t.equal(svc.received.length, 0)
})

const keys = (svc: PushService): PushSubscriptionJSON['keys'] => svc.subscription('k').keys

t.test('POST and DELETE /push/subscriptions: JWT required, bodies checked with codes, a cap per user', async (t) => {
  const { edge, svc } = await setup(t, {}, { maxSubscriptionsPerUser: 2 })
  const noAuth = await fetch(`${edge.http}/push/subscriptions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(svc.subscription('x')) })
  t.equal(noAuth.status, 401)
  const bad = await fetch(`${edge.http}/push/subscriptions`, { method: 'POST', headers: { authorization: 'Bearer nope', 'content-type': 'application/json' }, body: '{}' })
  t.same([bad.status, ((await bad.json()) as { code: string }).code], [401, 'FST_NOTIFY_UNAUTHORIZED'])
  const refused: unknown[] = [
    null, [], 'text', {},
    { endpoint: 'http://127.0.0.1/push/a', keys: keys(svc) },
    { endpoint: 'https://evil.example/push', keys: keys(svc) },
    { endpoint: 'not a url', keys: keys(svc) },
    { endpoint: `${svc.origin}/push/a`, keys: { p256dh: 'short', auth: keys(svc).auth } },
    { endpoint: `${svc.origin}/push/a`, keys: { p256dh: keys(svc).p256dh, auth: 'c2hvcnQ' } },
    { endpoint: `${svc.origin}/push/a`, keys: keys(svc), expirationTime: 'soon' },
    { endpoint: `${svc.origin}/push/a`, keys: keys(svc), extra: 1 },
    { endpoint: `${svc.origin}/${'a'.repeat(2100)}`, keys: keys(svc) }
  ]
  for (const body of refused) {
    const res = await register(edge, 'carol', body)
    t.same([res.status, res.body.code], [400, 'FST_NOTIFY_BAD_PUSH_SUBSCRIPTION'], JSON.stringify(body)?.slice(0, 60))
  }
  for (const name of ['one', 'two', 'three']) await register(edge, 'carol', svc.subscription(name))
  const names = async (): Promise<string[]> => (await edge.app.notifyOffline.subscriptions!.list('carol')).map((s) => s.endpoint.split('/').pop() as string)
  t.same(await names(), ['two', 'three'], 'past the cap the oldest goes')
  t.same(await register(edge, 'carol', { endpoint: `${svc.origin}/push/two` }, 'DELETE'), { status: 204, body: null })
  t.same(await names(), ['three'])
  t.same((await register(edge, 'carol', { endpoint: 'ftp://x' }, 'DELETE')).status, 400)
})

t.test('a store that fails answers 503 with a code', async (t) => {
  const failing = { add: async () => { throw new Error('down') }, remove: async () => { throw new Error('down') }, list: async () => [] }
  const { edge, svc } = await setup(t, {}, { store: failing })
  const res = await register(edge, 'dave', svc.subscription('d'))
  t.same([res.status, res.body.code], [503, 'FST_NOTIFY_PUSH_STORE_UNAVAILABLE'])
})
