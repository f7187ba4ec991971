// Channel keys across instances on a private Redis (SPEC section 12): resume with `since` per key
// on another instance, interest routing per key, and a pub/sub drop under open sockets on many
// keys, repaired from history per key or announced with a `gap` per key.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import type { StreamDefinition } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { build, connectUser, type Client, type Edge, type Frame } from './helpers.js'
import { redisServer, until } from './redis-server.js'

const CHANNELS: StreamDefinition[] = [
  ...STREAMS.filter((stream) => stream.kind !== 'channel'),
  { name: 'room', kind: 'channel', openAccess: true, history: { size: 500, ttl: 600 } },
  { name: 'chat', kind: 'channel', openAccess: true }
]

async function pair (t: Test): Promise<{ a: Edge, b: Edge, admin: Redis }> {
  const server = await redisServer(t)
  const admin = new Redis(server.url)
  admin.on('error', () => {})
  t.teardown(() => admin.disconnect())
  const [a, b] = await Promise.all([build(t, { streams: CHANNELS, redis: server.url }), build(t, { streams: CHANNELS, redis: server.url })])
  return { a, b, admin }
}

async function take (client: Client, count: number, timeout = 10_000): Promise<Frame[]> {
  const taken: Frame[] = []
  while (taken.length < count) taken.push(await client.next((f) => f.event === 'message', timeout))
  return taken
}

t.test('channel keys on two instances', async (t) => {
  const { a, b, admin } = await pair(t)

  t.test('resume on the other instance with since, per key: exactly what that key missed, then live', async (t) => {
    const onA = await connectUser(t, a, 'alice')
    await onA.subscribe('room:x', 'room:y')
    const first = await a.app.notify.publish({ stream: 'room', keys: ['x', 'y'], data: { n: 0 } })
    const seen = await take(onA, 2)
    const last = new Map(seen.map((m) => [m.stream, m.id]))
    await onA.close()
    const missed: Record<string, string[]> = { x: [], y: [] }
    for (let n = 1; n <= 20; n++) {
      const from = n % 2 === 0 ? a : b
      const { ids } = await from.app.notify.publish({ stream: 'room', keys: ['x', 'y'], data: { n } })
      missed.x.push(ids[0])
      missed.y.push(ids[1])
    }
    t.same(seen.map((m) => m.id).sort(), [...first.ids].sort())
    const onB = await connectUser(t, b, 'alice')
    const answer = await onB.subscribe({ stream: 'room:x', since: last.get('room:x')! }, { stream: 'room:y', since: last.get('room:y')! })
    t.same(answer.gaps, [])
    const replayed = await take(onB, 40)
    for (const key of ['x', 'y']) {
      t.same(replayed.filter((m) => m.stream === `room:${key}`).map((m) => m.id), missed[key], `room:${key}: its own 20, in order`)
    }
    const live = await a.app.notify.publish({ stream: 'room', key: 'y', data: { n: 21 } })
    t.equal((await onB.event('message')).id, live.id)
    await onB.request({ event: 'ping' }, 'pong')
    t.same(onB.messages(), [], 'nothing twice')
  })

  t.test('an instance subscribes on Redis to the keys its sockets want, and only those', async (t) => {
    const topic = (key: string): string => a.app.notify.streams.get('room')!.topic(key)
    const numsub = async (key: string): Promise<number> => Number((await admin.pubsub('NUMSUB', topic(key)))[1])
    const onB = await connectUser(t, b, 'bob')
    await onB.subscribe('room:only-b', 'room:also-b', 'chat:also-b')
    t.equal(await numsub('only-b'), 1, 'one subscriber: B')
    // Redis's PUBLISH scans every pattern subscription: one per key would make a publish's cost grow with the keys live.
    t.equal(await admin.pubsub('NUMPAT'), 0, 'keys are SUBSCRIBEd, never PSUBSCRIBEd')
    t.equal(await numsub('nobody'), 0)
    await onB.request({ event: 'unsubscribe', streams: ['room:only-b'] }, 'unsubscribed')
    await until('B to leave the channel', async () => await numsub('only-b') === 0)
    const channels = await admin.pubsub('CHANNELS', '*') as string[]
    t.notOk(channels.some((channel) => /[*?[\]]/.test(channel)), 'no pattern-like channel on Redis')
  })

  t.test('a pub/sub drop under open sockets on 30 keys: every key with history is repaired, every key without gets a gap', async (t) => {
    const roomKeys = Array.from({ length: 30 }, (_, i) => `k${i}`)
    const chatKeys = ['c0', 'c1', 'c2']
    const onB = await connectUser(t, b, 'carol')
    await onB.subscribe(...roomKeys.map((key) => `room:${key}`), ...chatKeys.map((key) => `chat:${key}`))
    const sent = new Map<string, string[]>(roomKeys.map((key) => [`room:${key}`, []]))
    for (let round = 0; round < 10; round++) {
      if (round === 3) await admin.client('KILL', 'TYPE', 'pubsub')
      const { ids } = await a.app.notify.publish({ stream: 'room', keys: roomKeys, data: { round } })
      roomKeys.forEach((key, i) => sent.get(`room:${key}`)!.push(ids[i]))
    }
    const received = await take(onB, 300, 20_000)
    for (const [name, ids] of sent) t.same(received.filter((m) => m.stream === name).map((m) => m.id), ids, `${name}: all 10, in order, once`)
    await until('a gap per key without history', () => onB.frames.filter((f) => f.event === 'gap').length >= chatKeys.length)
    const gaps = onB.frames.filter((f) => f.event === 'gap').flatMap((f) => f.streams as string[])
    t.same([...new Set(gaps)].sort(), chatKeys.map((key) => `chat:${key}`), 'the gaps name the keys without history, in full')
    await onB.request({ event: 'ping' }, 'pong')
    t.same(onB.messages(), [], 'nothing twice')
    t.equal(onB.closeCode, null, 'on the same socket')
    const { repaired } = b.app.notifyStreams.get('/ws')!.stats
    t.ok(repaired > 0, `the drop did lose live messages, which B took from history (${repaired})`)
  })
})
