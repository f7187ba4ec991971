// 1,000 random and hostile messages through the RabbitMQ ingress: nothing crashes, nothing reaches
// another user, and each ends acknowledged or dead-lettered.
import t from 'tap'
import { routingKey } from '../plugins/index.js'
import { build, connect, connectUser, watchProcessFailures, type Client } from './helpers.js'
import { AMQP_URL, amqpNames, producer, queueDepth } from './rabbitmq.js'
import { until } from './redis-server.js'

// A seeded generator, so that a failure can be replayed.
let seed = Number(process.env.HOSTILE_SEED ?? 20261129)
function random (): number {
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
}
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]
const junk = (length: number): string => Array.from({ length }, () => String.fromCharCode(Math.floor(random() * 0x3000))).join('')

const USERS = ['alice', '#', '*', 'a.b', '50%', 'ü-日本', 'private', '..', ' ']

interface Hostile { key: string, body: unknown, messageId?: string, to?: string, accepted: boolean }

function hostile (n: number): Hostile {
  const user = pick(USERS)
  switch (pick(['private', 'private', 'public', 'literal', 'garbage', 'binary', 'huge', 'schema', 'messageId', 'wildcard'])) {
    case 'private': return { key: routingKey({ stream: 'reward', user }), body: { to: user, n }, to: user, accepted: true }
    case 'public': return { key: 'public.promotional', body: { n }, accepted: true }
    // The literal routing keys of users `#` and `*`: the user is `#`, not every user.
    case 'literal': return { key: pick(['private.#.reward', 'private.*.reward']), body: { n }, accepted: true }
    // AMQP caps a routing key at 255 bytes; a longer one never reaches any queue, so none is tried.
    case 'garbage': return { key: pick(['#', '*', 'private.#', 'private.*.*', 'public.#', 'public.', 'private..reward', 'private.%zz.reward', `x${junk(40)}`, `private.${'a'.repeat(230)}.reward.x`]), body: { n }, accepted: false }
    case 'binary': return { key: routingKey({ stream: 'reward', user }), body: Buffer.from([0xff, ...Array.from({ length: 64 }, () => Math.floor(random() * 256))]), accepted: false }
    case 'huge': return { key: 'public.promotional', body: { n, pad: 'x'.repeat(100_000) }, accepted: false }
    case 'schema': return { key: routingKey({ stream: 'order', user }), body: { n }, accepted: false }
    case 'messageId': return { key: 'public.promotional', body: { n }, messageId: 'm'.repeat(200), accepted: false }
    default: return { key: pick(['private.#.nope', 'public.order', 'private.alice.promotional']), body: { n }, accepted: false }
  }
}

t.test('1,000 hostile messages: no crash, no leak, each acked or dead-lettered', async (t) => {
  const failures = watchProcessFailures(t)
  const names = amqpNames(t)
  const edge = await build(t, {
    amqp: { url: AMQP_URL, exchange: names.exchange, queue: names.queue, deadLetterExchange: names.deadLetterExchange, deadLetterQueue: names.deadLetterQueue }
  })
  await until('consuming', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const clients = new Map<string, Client>()
  for (const user of USERS) {
    const client = await connectUser(t, edge, user)
    await client.subscribe('reward')
    clients.set(user, client)
  }
  const { client: visitor } = await connect(t, `${edge.ws}/public`)
  await visitor.subscribe('promotional')

  const messages = Array.from({ length: 1000 }, (_, n) => hostile(n))
  // Literal `#` / `*` keys address the user of that name.
  for (const m of messages) if (m.key === 'private.#.reward' || m.key === 'private.*.reward') m.to = m.key.split('.')[1]
  const p = producer(t, names.exchange)
  for (const m of messages) await p.send(m.key, m.body, m.messageId === undefined ? {} : { messageId: m.messageId })

  const accepted = messages.filter((m) => m.accepted).length
  await until('every message handled', () => edge.app.notifyAmqp.stats.acked + edge.app.notifyAmqp.stats.rejected === messages.length, 30_000)
  t.equal(edge.app.notifyAmqp.stats.acked, accepted, 'the valid ones published')
  t.equal(edge.app.notifyAmqp.stats.rejected, messages.length - accepted, 'the rest rejected')
  t.equal(edge.app.notifyAmqp.stats.requeued, 0)
  t.equal(await queueDepth(p.connection, names.queue), 0, 'nothing left in the queue')
  await until('the dead letters', async () => await queueDepth(p.connection, names.deadLetterQueue) === messages.length - accepted)

  for (const [user, client] of clients) {
    const expected = messages.filter((m) => m.accepted && m.to === user).map((m) => (m.body as { n: number }).n)
    const got: number[] = []
    while (got.length < expected.length) got.push((await client.event('message', 10_000)).data.n)
    await client.request({ event: 'ping' }, 'pong')
    t.same(got.concat(client.messages().map((f) => f.data.n)), expected, `${JSON.stringify(user)} got exactly its own messages, in order`)
  }
  const publicOnes = messages.filter((m) => m.accepted && m.key === 'public.promotional').length
  for (let i = 0; i < publicOnes; i++) await visitor.event('message', 10_000)
  t.same(failures, [], 'no uncaught exception or unhandled rejection')
  t.equal((await fetch(`${edge.http}/notifications`, { method: 'POST' })).status, 401, 'the edge still serves')
})
