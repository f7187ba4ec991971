import t from 'tap'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, build, connectUser } from './helpers.js'
import { AMQP_URL, amqpNames, rabbitServer } from './rabbitmq.js'
import { freePort, until } from './redis-server.js'
import { publisherApp, silentServer } from './split-helpers.js'

// The gRPC and AMQP transports of the publisher through bad input and faults; their happy paths
// run in split-out.test.ts with the order service.

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

/** Rejects with `code` within `ms`. */
async function failsWithin (t: Test, ms: number, work: Promise<unknown>, code: string, what: string): Promise<void> {
  const started = Date.now()
  await t.rejects(work, { code, statusCode: 503 }, what)
  t.ok(Date.now() - started < ms, `${what}: within ${ms} ms (${Date.now() - started} ms)`)
}

t.test('over gRPC, the edge\'s status codes map onto the same coded errors', async (t) => {
  const edge = await build(t, { streams: STREAMS.filter((s) => s.name !== 'reward'), grpc: { apiKey: API_KEY, port: 0 } })
  const address = `127.0.0.1:${edge.app.notifyGrpc.port}`
  const good = await publisherApp(t, { grpc: { address, apiKey: API_KEY } })
  await t.rejects(good.app.notify.publish({ stream: 'reward', user: 'a', data: {} }), { code: 'FST_NOTIFY_DECLARATION_MISMATCH', statusCode: 500 },
    'a stream the edge does not declare (INVALID_ARGUMENT)')
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const { ids } = await good.app.notify.publish({ stream: 'order', users: ['alice', 'b'], data: { orderId: '1', status: 'placed' } }) as { ids: string[] }
  t.equal((await alice.event('message')).id, ids[0], 'the ids are the edge\'s message ids')

  const wrongKey = await publisherApp(t, { grpc: { address, apiKey: 'another-key-0123456789' } })
  await t.rejects(wrongKey.app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_EDGE_REFUSED', message: /FST_NOTIFY_BAD_API_KEY/ },
    'UNAUTHENTICATED, with the edge\'s code from the x-error-code trailer')
})

t.test('over gRPC, an unreachable or frozen edge answers 503 within the deadline, never hangs', async (t) => {
  const closed = await publisherApp(t, { grpc: { address: `127.0.0.1:${await freePort()}`, apiKey: API_KEY } })
  await failsWithin(t, 2000, closed.app.notify.publish({ stream: 'promotional', data: {} }), 'FST_NOTIFY_BUS_UNAVAILABLE', 'nothing listening (UNAVAILABLE)')
  const frozen = await publisherApp(t, { grpc: { address: `127.0.0.1:${await silentServer(t)}`, apiKey: API_KEY }, timeout: 300 })
  await failsWithin(t, 2000, frozen.app.notify.publish({ stream: 'promotional', data: {} }), 'FST_NOTIFY_BUS_UNAVAILABLE', 'a frozen edge (DEADLINE_EXCEEDED)')
})

t.test('over AMQP, no broker answers 503 within timeout, and the app still closes', async (t) => {
  const { app } = await publisherApp(t, { amqp: { url: `amqp://guest:guest@127.0.0.1:${await freePort()}` }, timeout: 500 })
  await failsWithin(t, 2000, app.notify.publish({ stream: 'promotional', data: {} }), 'FST_NOTIFY_BUS_UNAVAILABLE', 'no broker')
  await app.close()
})

t.test('over AMQP, an exchange no edge consumes answers 503 rather than dropping the message', async (t) => {
  const names = amqpNames(t)
  const { app } = await publisherApp(t, { amqp: { url: AMQP_URL, exchange: names.exchange } })
  await t.rejects(app.notify.publish({ stream: 'promotional', data: {} }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', message: /no queue is bound/ })
  await t.rejects(app.notify.publish({ stream: 'reward', user: '\u{1F600}'.repeat(40), data: {} }), { code: 'FST_NOTIFY_INVALID_USER', statusCode: 400 },
    'a user id over a routing key\'s 255 bytes, percent-encoded')
})

t.test('over AMQP, a broker that stops answers 503 within timeout, and publishing resumes when it is back', async (t) => {
  const broker = await rabbitServer(t)
  const names = amqpNames(t, broker.url)
  const retry = { retryLow: 20, retryHigh: 200 }
  const edge = await build(t, { amqp: { url: { url: broker.url, ...retry }, exchange: names.exchange, queue: names.queue } })
  await until('the edge to consume', () => edge.app.notifyAmqp.health().state === 'consuming', 30_000)
  const { app } = await publisherApp(t, { amqp: { url: { url: broker.url, ...retry }, exchange: names.exchange }, timeout: 500 })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('reward')
  await app.notify.publish({ stream: 'reward', user: 'alice', data: 1 })
  t.equal((await alice.event('message')).data, 1)

  await broker.stop()
  await failsWithin(t, 2000, app.notify.publish({ stream: 'reward', user: 'alice', data: 2 }), 'FST_NOTIFY_BUS_UNAVAILABLE', 'broker down')
  await broker.start()
  await until('a publish to succeed again', () => app.notify.publish({ stream: 'reward', user: 'alice', data: 3 }).then(() => true, () => false), 30_000)
  t.equal((await alice.event('message', 30_000)).data, 3, 'the message refused while the broker was down was never sent')
})
