// Members presence when an instance dies (SPEC section 12): SIGKILL of an edge process leaves
// its members' `leave` to the survivor, once presence stops counting it, and only for the users
// who have no connection left anywhere.
import { once } from 'node:events'
import t from 'tap'
import { CHANNEL_EDGE_STREAMS, CHANNEL_EDGE_TIMINGS } from './channel-edge-options.js'
import { serverProcess } from './example-process.js'
import { SECRET, build, connect, connectUser, ticket, token, type Client } from './helpers.js'
import { redisServer } from './redis-server.js'

t.test('SIGKILL of an instance: its members leave within the presence timeout, once; users still connected elsewhere stay', async (t) => {
  const redis = await redisServer(t)
  const a = await build(t, { streams: CHANNEL_EDGE_STREAMS, redis: redis.url, ...CHANNEL_EDGE_TIMINGS })
  const b = await serverProcess(t, process.execPath, ['--import', '@tapjs/typescript/import', 'test/channel-edge.ts'],
    { TS_NODE_TRANSPILE_ONLY: '1', REDIS_URL: redis.url, JWT_SECRET: SECRET })
  const onB = async (user: string): Promise<Client> => {
    const { client } = await connect(t, `${b.ws}/ws?ticket=${await ticket(b.http, token(a.app, user))}`)
    await client.subscribe('room:lobby')
    return client
  }
  const alice = await connectUser(t, a, 'alice')
  await alice.subscribe('room:lobby')
  await onB('bob')
  t.same(await alice.event('join'), { event: 'join', stream: 'room:lobby', user: 'bob' })
  const carolOnA = await connectUser(t, a, 'carol')
  await carolOnA.subscribe('room:lobby')
  t.same(await alice.event('join'), { event: 'join', stream: 'room:lobby', user: 'carol' })
  await onB('carol')

  const exited = once(b.child, 'exit')
  const killedAt = Date.now()
  b.child.kill('SIGKILL')
  await exited
  t.same(await alice.event('leave', 10_000), { event: 'leave', stream: 'room:lobby', user: 'bob' })
  const after = Date.now() - killedAt
  t.ok(after < 5000, `within the presence timeout and a sweep (${after} ms)`)
  t.same(await carolOnA.event('leave'), { event: 'leave', stream: 'room:lobby', user: 'bob' })
  await new Promise((resolve) => setTimeout(resolve, 1500))
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.frames.filter((f) => f.event === 'leave' || f.event === 'join'), [], 'carol, still on A, never left; bob left once')
  t.same((await a.app.notify.presence({ stream: 'room', key: 'lobby' })).members, ['alice', 'carol'])
})
