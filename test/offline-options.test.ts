import t from 'tap'
import webpush from 'web-push'
import { build, publish, registrationError } from './helpers.js'
import { pushService } from './push-service.js'
import { nextDelay, retryAfter, retryPolicy } from '../plugins/offline/retry.js'

const vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@shop.example' }
const push = { vapid }
const email = { transport: 'smtp://127.0.0.1:2525', from: 'notify@shop.example', address: () => null }

t.test('bad offline options fail registration with FST_NOTIFY_INVALID_OPTION', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['no streams', { streams: {}, push }],
    ['streams not an object', { streams: null, push }],
    ['an undeclared stream', { streams: { nope: {} }, push }],
    ['a public stream', { streams: { promotional: {} }, push }],
    ['a bad ttl', { streams: { order: { ttl: 0 } }, push }],
    ['an e-mail template that is not a function', { streams: { order: { email: 'hi' } }, push, email }],
    ['an e-mail template without email', { streams: { order: { email: () => ({ subject: '', text: '' }) } }, push }],
    ['neither push nor email', { streams: { order: {} } }],
    ['a preference that is not a function', { streams: { order: {} }, push, preference: 'push' }],
    ['claims without claim()', { streams: { order: {} }, push, claims: {} }],
    ['a push store without list()', { streams: { order: {} }, push: { vapid, store: { add () {}, remove () {} } } }],
    ['no VAPID keys', { streams: { order: {} }, push: { vapid: {} } }],
    ['a VAPID subject that is not a URL', { streams: { order: {} }, push: { vapid: { ...vapid, subject: 'ops' } } }],
    ['maxPayload over what RFC 8291 fits', { streams: { order: {} }, push: { vapid, maxPayload: 5000 } }],
    ['a bad timeout', { streams: { order: {} }, push: { vapid, timeout: -1 } }],
    ['a bad concurrency', { streams: { order: {} }, push, concurrency: 0 }],
    ['allowedEndpointHosts not a list of names', { streams: { order: {} }, push: { vapid, allowedEndpointHosts: 'fcm.googleapis.com' } }],
    ['an agent that is not an https.Agent', { streams: { order: {} }, push: { vapid, agent: {} } }],
    ['a path without /', { streams: { order: {} }, push: { vapid, path: 'push' } }],
    ['email without from', { streams: { order: {} }, email: { ...email, from: '' } }],
    ['email address that is not a function', { streams: { order: {} }, email: { ...email, address: 'bob@x' } }],
    ['an email transport that is neither', { streams: { order: {} }, email: { ...email, transport: 42 } }]
  ]
  for (const [why, offline] of bad) {
    t.match(await registrationError({ offline }), { code: 'FST_NOTIFY_INVALID_OPTION' }, why)
  }
  t.equal(await registrationError({ offline: { streams: { order: {} }, push, email } }), null, 'a good one registers')
})

t.test('Retry-After in seconds or as an HTTP date; backoff doubles, capped, and stops at the TTL or the attempts', async (t) => {
  const now = Date.parse('2026-12-07T20:00:00Z')
  t.equal(retryAfter('3', now), 3000)
  t.equal(retryAfter('Mon, 07 Dec 2026 20:00:05 GMT', now), 5000)
  t.equal(retryAfter('Mon, 07 Dec 2026 19:00:00 GMT', now), 0, 'a date past is now')
  t.equal(retryAfter('soon', now), null)
  t.equal(retryAfter(undefined, now), null)
  const policy = retryPolicy({ attempts: 4, baseDelay: 100, maxDelay: 300 })
  const far = now + 60_000
  for (const [attempt, max] of [[1, 100], [2, 200], [3, 300]]) {
    const delay = nextDelay(policy, attempt, null, far, now) as number
    t.ok(delay >= max / 2 && delay <= max, `attempt ${attempt}: ${delay} ms within [${max / 2}, ${max}]`)
  }
  t.equal(nextDelay(policy, 4, null, far, now), null, 'out of attempts')
  t.equal(nextDelay(policy, 1, 2000, far, now), 2000, 'Retry-After as given')
  t.equal(nextDelay(policy, 1, 2000, now + 1000, now), null, 'past the TTL')
  t.throws(() => retryPolicy({ attempts: 0 }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})

t.test('past maxQueue a new copy is dropped and counted failed, and the sends of copies taken still go', async (t) => {
  const svc = await pushService(t, vapid.publicKey, vapid.subject)
  const edge = await build(t, {
    offline: { streams: { order: {} }, push: { vapid, agent: svc.agent, allowedEndpointHosts: [svc.host] }, concurrency: 1, maxQueue: 1 }
  })
  for (const user of ['a', 'b', 'c']) await edge.app.notifyOffline.subscriptions!.add(user, svc.subscription(user), 10)
  svc.holdAll = true
  await publish(edge.http, { stream: 'order', users: ['a', 'b', 'c'], data: { orderId: 'o', status: 'placed' } })
  await svc.waitOpen(1)
  t.equal(edge.app.notifyOffline.stats.push.failed, 1, 'one running, one waiting, one dropped')
  svc.holdAll = false
  svc.release()
  await edge.app.notifyOffline.idle()
  t.equal(svc.received.length, 2)
})

t.test('closing the app drops a retry that waits and stops handing over', async (t) => {
  const svc = await pushService(t, vapid.publicKey, vapid.subject)
  const edge = await build(t, { offline: { streams: { order: {} }, push: { vapid, agent: svc.agent, allowedEndpointHosts: [svc.host] } } })
  await edge.app.notifyOffline.subscriptions!.add('bob', svc.subscription('bob'), 10)
  svc.behave('bob', { status: 429, headers: { 'retry-after': '600' } })
  await publish(edge.http, { stream: 'order', user: 'bob', data: { orderId: 'o', status: 'placed' } })
  await svc.waitFor(1)
  const idle = edge.app.notifyOffline.idle()
  await edge.app.close()
  await idle
  t.equal(edge.app.notifyOfflineHandoff, null)
  t.same([edge.app.notifyOffline.stats.push.retried, svc.received.length], [1, 1], 'the retry never went')
})
