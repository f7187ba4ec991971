import { once } from 'node:events'
import t from 'tap'
import { exampleProcess, login } from './example-process.js'
import { API_KEY, SECRET, connect, publish, ticket } from './helpers.js'
import { redisServer } from './redis-server.js'

t.test('SIGKILL of one of two instances leaves the other serving, and its clients resume there', async (t) => {
  const redis = await redisServer(t)
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])
  const aliceJwt = await login(a.http, 'alice')
  const { client: alice } = await connect(t, `${a.ws}/ws?ticket=${await ticket(a.http, aliceJwt)}`)
  await alice.subscribe('reward')
  // Taken from the instance about to die; the tickets live in Redis.
  const spare = await ticket(a.http, aliceJwt)
  const { client: bob } = await connect(t, `${b.ws}/ws?ticket=${await ticket(b.http, await login(b.http, 'bob'))}`)
  await bob.subscribe('reward')
  const { client: visitor } = await connect(t, `${b.ws}/public`)
  await visitor.subscribe('promotional')

  const first = await publish(b.http, { stream: 'reward', user: 'alice', data: { n: 1 } })
  const seen = await alice.event('message')
  t.equal(seen.id, first.body.id, 'alice on A receives what B publishes')

  const exited = once(a.child, 'exit')
  a.child.kill('SIGKILL')
  await exited
  t.equal(await alice.closed, 1006, 'alice loses her socket without a close frame')

  const toBob = await publish(b.http, { stream: 'reward', user: 'bob', data: { n: 2 } })
  t.equal((await bob.event('message')).id, toBob.body.id, 'B still delivers private messages')
  const promo = await publish(b.http, { stream: 'promotional', data: { n: 3 } })
  t.equal((await visitor.event('message')).id, promo.body.id, 'and public ones')
  t.equal((await fetch(`${b.http}/health`)).status, 200)
  const missed = await publish(b.http, { stream: 'reward', user: 'alice', data: { n: 4 } })
  t.equal(missed.status, 202)

  const { client: back, welcome } = await connect(t, `${b.ws}/ws?ticket=${spare}`)
  t.equal(welcome.user, 'alice', 'a ticket issued by the dead instance is redeemed by the survivor')
  const subscribed = await back.subscribe({ stream: 'reward', since: seen.id })
  t.same(subscribed.gaps, [], 'history reaches back to her last message')
  t.same((await back.event('message')).data, { n: 4 }, 'what was published while she was away is replayed')
  const live = await publish(b.http, { stream: 'reward', user: 'alice', data: { n: 5 } })
  t.equal((await back.event('message')).id, live.body.id, 'then live messages follow')
})
