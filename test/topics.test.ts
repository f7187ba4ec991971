import mqemitter from 'mqemitter'
import t, { type Test } from 'tap'
import { userIdProblem } from '../plugins/topics.js'
import { SECRET, build, claims, connect, publish, registrationError, signJwt, type Client, type Edge } from './helpers.js'

// Ids that look like topic syntax, percent-escapes, unicode look-alikes and near-duplicates.
const TRICKY = [
  'alice', 'Alice', 'alice ', ' alice', 'alice\u0000', 'a', '/', '//', 'a/b', 'a/+', 'a/#', '+', '#', '*', '.', '..',
  '%', '%2F', 'a%2Fb', 'a.b', 'a*b', '$SYS', 'YQ', 'YQ==', 'ålice', 'e\u0301', '\u00e9', 'ａlice', '🙂', '用户',
  'x'.repeat(256), 'x'.repeat(255)
]

t.test('no two user ids share a topic, and no topic holds a wildcard or an extra level', async (t) => {
  const edge = await build(t)
  const order = edge.app.notify.streams.get('order')!
  const topics = TRICKY.map((user) => order.topic(user))
  t.equal(new Set(topics).size, TRICKY.length, 'every id has its own topic')
  for (const [i, topic] of topics.entries()) {
    const levels = topic.split('/')
    t.equal(levels.length, 4, `${JSON.stringify(TRICKY[i])}: prefix/u/stream/user`)
    t.same(levels.slice(0, 3), ['notify', 'u', 'order'])
    t.match(levels[3], /^[A-Za-z0-9_-]+$/, 'the user level is base64url: no + # / * .')
  }
  t.equal(edge.app.notify.streams.get('promotional')!.topic(null), 'notify/p/promotional')
  t.not(order.topic('p'), edge.app.notify.streams.get('promotional')!.topic(null))
})

t.test('user ids that cannot be encoded safely are refused', async (t) => {
  const bad: unknown[] = ['', 'x'.repeat(257), '\ud800', '\udc00', 'a\ud83db', 'b\ude42', 42, null, undefined, ['alice'], { user: 'alice' }]
  for (const user of bad) t.type(userIdProblem(user), 'string', JSON.stringify(user) ?? String(user))
  t.equal(userIdProblem('🙂'), null, 'a well-formed surrogate pair is fine')

  const edge = await build(t)
  for (const user of ['', 'x'.repeat(257), 'lone\ud800']) {
    const res = await publish(edge.http, { stream: 'order', user, data: { orderId: '1', status: 'placed' } })
    t.equal(res.status, 400)
    t.equal(res.body.code, 'FST_NOTIFY_INVALID_USER')
  }
})

async function connectAs (t: Test, edge: Edge, user: string): Promise<Client> {
  const { client, welcome } = await connect(t, `${edge.ws}/ws?token=${encodeURIComponent(signJwt(claims(user), 'HS256', SECRET))}`)
  if (welcome.user !== user) throw new Error(`connected as ${welcome.user}, wanted ${user}`)
  await client.subscribe('order')
  return client
}

t.test('over a real socket, each tricky user receives exactly its own messages', async (t) => {
  const edge = await build(t)
  const users = ['a', 'a/b', 'a/+', 'a/#', '+', '#', '*', '%2F', 'YQ', 'ålice', '🙂']
  const clients = await Promise.all(users.map((user) => connectAs(t, edge, user)))
  t.equal(edge.app.notifyBus.topicCount(), users.length, 'one topic per user')
  for (const user of users) {
    const res = await publish(edge.http, { stream: 'order', user, data: { orderId: user, status: 'placed' } })
    t.equal(res.status, 202)
  }
  for (const [i, client] of clients.entries()) {
    const message = await client.event('message')
    t.equal(message.data.orderId, users[i], `${users[i]} got its message`)
    await client.request({ event: 'ping' }, 'pong')
    t.same(client.messages(), [], `${users[i]} got nothing else`)
  }
})

t.test('deployments with different prefixes share one emitter without seeing each other', async (t) => {
  const emitter = mqemitter()
  t.teardown(() => new Promise<void>((resolve) => emitter.close(() => resolve())))
  async function deployment (topicPrefix: string): Promise<Edge> {
    const edge = await build(t, { topicPrefix, bus: { emitter } })
    t.equal(edge.app.notify.streams.get('order')!.topic('alice').split('/')[0], topicPrefix)
    return edge
  }
  const [blue, green] = [await deployment('blue'), await deployment('green')]
  const watchers = await Promise.all([blue, green].map(async (edge) => {
    const client = await connectAs(t, edge, 'alice')
    await client.subscribe('promotional')
    return client
  }))
  await publish(blue.http, { stream: 'order', user: 'alice', data: { orderId: 'blue', status: 'placed' } })
  await publish(blue.http, { stream: 'promotional', data: { text: 'blue' } })
  t.same(await Promise.all([watchers[0].event('message'), watchers[0].event('message')]).then((ms) => ms.map((m) => m.stream)), ['order', 'promotional'])
  await watchers[1].request({ event: 'ping' }, 'pong')
  t.same(watchers[1].messages(), [], 'green saw none of blue\'s messages')
})

t.test('a topic prefix that could add a level or a wildcard is refused', async (t) => {
  for (const topicPrefix of ['', 'a/b', '+', '#', 'a b', 'x'.repeat(65)]) {
    t.equal((await registrationError({ topicPrefix }))?.code, 'FST_NOTIFY_INVALID_OPTION', JSON.stringify(topicPrefix))
  }
})
