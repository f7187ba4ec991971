import t from 'tap'
import { Redis } from 'ioredis'
import { privateTopic, publicTopic } from '../plugins/topics.js'
import type { RedisClientLike } from '../plugins/index.js'
import { build, connectUser, publish } from './helpers.js'
import { sharedRedis, until } from './redis-server.js'

// An instance holds a Redis SUBSCRIBE only for topics its own sockets want: shown by asking Redis
// (PUBSUB CHANNELS / NUMSUB), the instance's counters, and what reaches its subscriber connection.

t.test('an instance subscribes in Redis only to the topics its sockets want', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const redis = new Redis(url)
  t.teardown(() => redis.disconnect())
  // The control topic (SPEC section 15) is every instance's own, whatever its sockets want.
  const control = `${prefix}/control`
  const channels = async (): Promise<string[]> => (await redis.pubsub('CHANNELS', `${prefix}/*`) as string[]).filter((channel) => channel !== control).sort()
  const numsub = async (channel: string): Promise<number> => (await redis.pubsub('NUMSUB', channel))[1] as number

  // Instance A's bus connections are duplicated from this client, so the test sees every
  // message Redis sends to A, whether or not a socket of A would have delivered it.
  const reachedA: string[] = []
  const client: RedisClientLike = {
    duplicate (override) {
      const connection = new Redis(url, override ?? {})
      connection.on('messageBuffer', (channel: Buffer) => reachedA.push(channel.toString()))
      return connection
    }
  }
  const a = await build(t, { redis: url, bus: { redis: { client } }, topicPrefix: prefix })
  const b = await build(t, { redis: url, topicPrefix: prefix })
  const counters = (edge: typeof a): { bus: number, route: number } =>
    ({ bus: edge.app.notifyBus.topicCount(), route: edge.app.notifyStreams.get('/ws')!.topicCount() })

  const alice = privateTopic(prefix, 'order', 'alice')
  const bob = privateTopic(prefix, 'order', 'bob')
  const promotional = publicTopic(prefix, 'promotional')

  t.same(await channels(), [], 'nothing subscribed before any socket asks')
  t.same(counters(a), { bus: 0, route: 0 })

  const alice1 = await connectUser(t, a, 'alice')
  const alice2 = await connectUser(t, a, 'alice')
  const bobOnB = await connectUser(t, b, 'bob')
  await alice1.subscribe('order', 'promotional')
  await alice2.subscribe('order', 'promotional')
  await bobOnB.subscribe('order', 'promotional')

  t.same(await channels(), [alice, bob, promotional].sort())
  t.equal(await numsub(alice), 1, "alice's topic: one subscription (A's), however many of her sockets")
  t.equal(await numsub(bob), 1, "bob's topic: B's only")
  t.equal(await numsub(promotional), 2, 'the public topic: one per instance')
  t.same(counters(a), { bus: 2, route: 2 })
  t.same(counters(b), { bus: 2, route: 2 })

  t.test('a message for bob never reaches A, where bob is not subscribed', async (t) => {
    const forBob = await publish(a.http, { stream: 'order', user: 'bob', data: { orderId: 'b1', status: 'placed' } })
    t.equal((await bobOnB.event('message')).id, forBob.body.id)
    // A's subscriber connection receives in publish order: once alice's arrives, bob's would have.
    const forAlice = await publish(b.http, { stream: 'order', user: 'alice', data: { orderId: 'a1', status: 'placed' } })
    for (const socket of [alice1, alice2]) t.equal((await socket.event('message')).id, forAlice.body.id)
    t.same(reachedA, [alice], "only alice's topic reached A")
    t.same([...alice1.messages(), ...alice2.messages(), ...bobOnB.messages()], [])
  })

  t.test('the subscription stays while one socket wants it and goes with the last', async (t) => {
    await alice2.close()
    await until("A to release alice2's subscriptions", () => a.app.notifyStreams.get('/ws')!.connections.size === 1)
    t.equal(await numsub(alice), 1, 'alice1 still wants it')
    await alice1.request({ event: 'unsubscribe', streams: ['order'] }, 'unsubscribed')
    t.equal(await numsub(alice), 0, 'gone from Redis once the last socket unsubscribed')
    t.same(counters(a), { bus: 1, route: 1 })
    await alice1.close()
    await until('A to drop the public topic', () => a.app.notifyBus.topicCount() === 0)
    t.same(counters(a), { bus: 0, route: 0 })
    t.equal(await numsub(promotional), 1, "B's alone")
    await bobOnB.close()
    await until('B to drop its topics', () => b.app.notifyBus.topicCount() === 0)
    t.same(await channels(), [], 'no socket, no subscription')
  })
})
