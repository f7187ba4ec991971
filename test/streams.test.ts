import t from 'tap'
import { build, connect, connectUser, publish } from './helpers.js'

t.test('a private message reaches only its user, on every connection', async (t) => {
  const edge = await build(t)
  const alice1 = await connectUser(t, edge, 'alice')
  const alice2 = await connectUser(t, edge, 'alice')
  const bob = await connectUser(t, edge, 'bob')
  for (const c of [alice1, alice2, bob]) t.same((await c.subscribe('order')).streams, ['order'])
  const res = await publish(edge.http, { stream: 'order', user: 'alice', data: { orderId: '1', status: 'placed' } })
  t.equal(res.status, 202)
  for (const c of [alice1, alice2]) {
    const m = await c.event('message')
    t.same(m, { event: 'message', stream: 'order', id: res.body.id, ts: m.ts, data: { orderId: '1', status: 'placed' } })
  }
  await bob.request({ event: 'ping' }, 'pong')
  t.same(bob.messages(), [])
})

t.test('anonymous /public cannot subscribe to a private stream', async (t) => {
  const edge = await build(t)
  const { client, welcome } = await connect(t, `${edge.ws}/public`)
  t.equal(welcome.user, null)
  client.send({ event: 'subscribe', streams: ['order', 'promotional'], id: 'c1' })
  const err = await client.event('error')
  t.match(err, { code: 'FORBIDDEN', stream: 'order', id: 'c1' })
  t.same((await client.event('subscribed')).streams, ['promotional'])
})
