// Presence and the publish outcome across two example-app processes on a private Redis that the
// test restarts; one process is SIGKILLed, the other closed cleanly.
import { once } from 'node:events'
import t from 'tap'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { Client } from './helpers.js'
import { exampleProcess, login, type ExampleProcess } from './example-process.js'
import { redisServer, scanKeys, until } from './redis-server.js'

const KEY = 'notify-edge-development-api-key'
const PRESENCE_KEYS = '{notify:presence}'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function open (t: Test, url: string): Promise<Client> {
  const socket = new WebSocket(url)
  const client = new Client(socket)
  t.teardown(() => { socket.terminate() })
  await once(socket, 'open')
  await client.event('welcome')
  return client
}

async function connectAs (t: Test, app: ExampleProcess, user: string): Promise<Client> {
  const res = await fetch(`${app.http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${await login(app.http, user)}` } })
  const { ticket } = await res.json() as { ticket: string }
  return open(t, `${app.ws}/ws?ticket=${ticket}`)
}

async function presence (app: ExampleProcess, query: string): Promise<Record<string, any> | null> {
  const res = await fetch(`${app.http}/presence?${query}`, { headers: { 'x-api-key': KEY } })
  return res.status === 200 ? await res.json() as Record<string, any> : null
}

async function publish (app: ExampleProcess, body: unknown): Promise<Record<string, any>> {
  const res = await fetch(`${app.http}/notifications`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) })
  return { status: res.status, ...await res.json() as Record<string, any> }
}

/** Waits until GET /presence?`query` on `app` answers `expected`. */
async function presenceIs (t: Test, app: ExampleProcess, query: string, expected: unknown, timeout?: number): Promise<void> {
  let last: unknown = null
  try {
    await until(`presence ${query}`, async () => {
      last = await presence(app, query)
      return JSON.stringify(last) === JSON.stringify(expected)
    }, timeout)
  } catch (err) {
    t.same(last, expected, (err as Error).message)
    throw err
  }
  t.same(last, expected, `presence ${query}`)
}

const data = { orderId: 'o1', status: 'placed' }

t.test('presence and the publish outcome across two instances, through churn, a Redis restart, a SIGKILL and a clean close', async (t) => {
  const server = await redisServer(t)
  const redis = new Redis(server.url, { maxRetriesPerRequest: null })
  t.teardown(() => redis.disconnect())
  const [a, b] = await Promise.all([exampleProcess(t, { REDIS_URL: server.url }), exampleProcess(t, { REDIS_URL: server.url })])

  // alice: two sockets on A, one on B; bob: one on B; an anonymous socket on A.
  const [a1, a2, b1, bob] = await Promise.all([connectAs(t, a, 'alice'), connectAs(t, a, 'alice'), connectAs(t, b, 'alice'), connectAs(t, b, 'bob')])
  const anonymous = await open(t, `${a.ws}/public`)
  await a1.subscribe('order', 'promotional')
  await b1.subscribe('promotional')
  await bob.subscribe('promotional', 'reward')
  await anonymous.subscribe('promotional')
  const everyone = [a1, a2, b1, bob, anonymous]

  await t.test('counts each user across instances, and a public stream\'s audience with anonymous sockets as connections only', async (t) => {
    await presenceIs(t, b, 'user=alice&user=bob&user=carol', {
      users: {
        alice: { connections: 3, streams: ['order', 'promotional'] },
        bob: { connections: 1, streams: ['promotional', 'reward'] },
        carol: { connections: 0, streams: [] }
      }
    })
    await presenceIs(t, a, 'stream=promotional', { stream: 'promotional', connections: 4, users: 2 })
  })

  await t.test('follows unsubscribes and sockets destroyed abruptly', async (t) => {
    await a1.request({ event: 'unsubscribe', streams: ['promotional'] }, 'unsubscribed')
    await presenceIs(t, a, 'stream=promotional', { stream: 'promotional', connections: 3, users: 2 })
    b1.socket.terminate()
    await presenceIs(t, a, 'user=alice', { users: { alice: { connections: 2, streams: ['order'] } } })
    await presenceIs(t, b, 'stream=promotional', { stream: 'promotional', connections: 2, users: 1 })
    everyone.splice(everyone.indexOf(b1), 1)
  })

  await t.test('a publish says who was online on any instance, over HTTP and to the hook', async (t) => {
    const one = await publish(b, { stream: 'order', user: 'alice', data })
    t.same([one.status, one.online], [202, true], 'alice is subscribed to order on the other instance')
    t.equal((await a1.event('message')).id, one.id)
    const many = await publish(a, { stream: 'order', users: ['alice', 'bob', 'carol'], data })
    t.same(many.offline, ['bob', 'carol'], 'bob is connected but not to order; carol not at all')
    t.same((await publish(a, { stream: 'reward', users: ['bob'], data: {} })).offline, [], 'bob is subscribed to reward on the other instance')
    t.same((await publish(b, { stream: 'order', user: 'carol', data })).online, false)
    t.match(await a.logged('carol is offline: would send an e-mail'), { user: 'carol', stream: 'order' }, 'the example app\'s onOffline logs it')
    const order = await fetch(`${b.http}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'dave' }) })
    t.match(await order.json(), { online: false }, 'the order service learns that its fallback fired')
    t.match(await b.logged('dave is offline: would send an e-mail'), { user: 'dave' })
  })

  await t.test('a Redis restart is rebuilt from each instance\'s memory, with no client reconnecting', async (t) => {
    await server.stop()
    await server.start()
    await presenceIs(t, a, 'user=alice&user=bob', {
      users: { alice: { connections: 2, streams: ['order'] }, bob: { connections: 1, streams: ['promotional', 'reward'] } }
    }, 20_000)
    await presenceIs(t, b, 'stream=promotional', { stream: 'promotional', connections: 2, users: 1 }, 20_000)
    await until('the bus to re-subscribe', async () => (await publish(b, { stream: 'order', user: 'alice', data })).online === true, 20_000)
    t.same(everyone.map((c) => c.closeCode), everyone.map(() => null), 'every socket stayed open')
    t.same(everyone.map((c) => c.frames.filter((f) => f.event === 'welcome').length), everyone.map(() => 0), 'no socket was welcomed again')
  })

  await t.test('a SIGKILLed instance stops counting within 30 s and leaves nothing behind', async (t) => {
    const before = await redis.zcard(`${PRESENCE_KEYS}:instances`)
    t.equal(before, 2)
    b.child.kill('SIGKILL')
    await presenceIs(t, a, 'user=alice&user=bob', {
      users: { alice: { connections: 2, streams: ['order'] }, bob: { connections: 0, streams: [] } }
    }, 30_000)
    await presenceIs(t, a, 'stream=promotional', { stream: 'promotional', connections: 1, users: 0 }, 30_000)
    t.equal((await publish(a, { stream: 'reward', user: 'bob', data: {} })).online, false, 'bob went with his instance')
    await until('the dead instance to leave the live set', async () => await redis.zcard(`${PRESENCE_KEYS}:instances`) === 1, 30_000)
    const [live] = await redis.zrange(`${PRESENCE_KEYS}:instances`, 0, -1)
    await until('its keys to expire', async () =>
      (await scanKeys(redis, PRESENCE_KEYS)).every((key) => key === `${PRESENCE_KEYS}:instances` || key.includes(live)), 30_000)
    t.pass('only the live instance\'s keys remain')
  })

  await t.test('a clean close removes the instance\'s counts before the process exits', async (t) => {
    t.equal(await a.stop(), 0)
    t.same(await scanKeys(redis, PRESENCE_KEYS), [], 'no presence key left')
  })
})
