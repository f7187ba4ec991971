import t from 'tap'
import webpush from 'web-push'
import { Redis } from 'ioredis'
import { build, connectUser, publish, API_KEY, type Edge } from './helpers.js'
import { pushService } from './push-service.js'
import { scanKeys, sharedRedis } from './redis-server.js'

const vapid = { ...webpush.generateVAPIDKeys(), subject: 'https://shop.example/contact' }
const data = { orderId: 'o1', status: 'placed' }

t.test('two instances on Redis share subscriptions, and one push goes out per message', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const redis = new Redis(url)
  t.teardown(async () => {
    for (const key of await scanKeys(redis, prefix)) await redis.del(key)
    await redis.quit()
  })
  const svc = await pushService(t, vapid.publicKey, vapid.subject)
  const options = {
    redis: url,
    topicPrefix: prefix,
    offline: { streams: { order: {} }, push: { vapid, agent: svc.agent, allowedEndpointHosts: [svc.host] } }
  }
  const [a, b]: Edge[] = await Promise.all([build(t, options), build(t, options)])

  // Registered on b, found by a: the subscriptions live in Redis.
  for (const user of ['bob', 'carol', 'dave', 'erin']) {
    t.equal((await b.app.notifyOffline.subscriptions!.add(user, svc.subscription(user), 10)), 1)
  }
  t.ok((await scanKeys(redis, `${prefix}:push:`)).length >= 8)

  await t.test('a user online on the other instance gets no push; the offline one gets it from the publishing instance', async (t) => {
    const bob = await connectUser(t, b, 'bob')
    await bob.subscribe('order')
    const { body } = await publish(a.http, { stream: 'order', users: ['bob', 'carol'], data })
    t.same(body.offline, ['carol'])
    await bob.event('message')
    await Promise.all([a.app.notifyOffline.idle(), b.app.notifyOffline.idle()])
    t.same(svc.received.map((push) => push.name), ['carol'])
    t.same([a.app.notifyOffline.stats.push.sent, b.app.notifyOffline.stats.push.sent], [1, 0])
  })

  await t.test('both instances handed the same message push it once: the claim is in Redis', async (t) => {
    const { body } = await publish(a.http, { stream: 'order', user: 'dave', data })
    const message = { stream: 'order', data, ids: [body.id as string] }
    // As if the offline outcome were heard twice, once on each instance (a publisher and its edge).
    b.app.notifyOfflineHandoff!(['dave'], message, () => {})
    a.app.notifyOfflineHandoff!(['dave'], message, () => {})
    await Promise.all([a.app.notifyOffline.idle(), b.app.notifyOffline.idle()])
    t.same(svc.received.filter((push) => push.name === 'dave').length, 1)
    t.equal(a.app.notifyOffline.stats.push.duplicate + b.app.notifyOffline.stats.push.duplicate, 2)
    t.ok((await scanKeys(redis, `${prefix}:offline:push:`)).length >= 1, 'claims under <prefix>:offline:')
  })

  await t.test('a publish retried on the other instance with its idempotency key is pushed once', async (t) => {
    const send = (edge: Edge): Promise<Response> => fetch(`${edge.http}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'idempotency-key': `${prefix}-erin` },
      body: JSON.stringify({ stream: 'order', user: 'erin', data })
    })
    const first = await send(a)
    const again = await send(b)
    t.equal(again.headers.get('idempotent-replayed'), 'true')
    t.same(await again.json(), await first.json())
    await Promise.all([a.app.notifyOffline.idle(), b.app.notifyOffline.idle()])
    t.same(svc.received.filter((push) => push.name === 'erin').length, 1)
  })
  t.same(svc.errors, [])
})
