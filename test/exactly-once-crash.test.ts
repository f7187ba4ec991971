import t from 'tap'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Metadata, credentials, type Client as GrpcClient, type ServiceError } from '@grpc/grpc-js'
import { jetstreamManager, AckPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream'
import { Redis } from 'ioredis'
import { natsSubject, notificationsService, routingKey } from '../plugins/index.js'
import { API_KEY, build, connectUser, type Client } from './helpers.js'
import { crashedKey, crashEdges, CRASH_STREAMS, type Edges, httpPublish, messagesOf, type Answer } from './crash-edge.js'
import type { ExampleProcess } from './example-process.js'
import { natsProducer } from './nats.js'
import { producer, queueDepth } from './rabbitmq.js'
import { kill, sharedRedis, until } from './redis-server.js'

// Several edge process restarts, each seconds on a busy machine.
t.setTimeout(300_000)

// An edge process SIGKILLed again and again while keyed publishes come in through every door
// (HTTP Idempotency-Key, gRPC idempotency_key, AMQP messageId, JetStream Nats-Msg-Id): on a
// stream with history each message is shown exactly once, in order, whatever the kill point;
// test/exactly-once-bound.test.ts checks the bound of a stream without history.

type Door = 'http' | 'grpc' | 'amqp' | 'js'
type GrpcCall = (request: Record<string, unknown>, metadata: Metadata, options: { deadline: number }, callback: (err: ServiceError | null, reply: { ids: string[] }) => void) => void

const DOORS: Door[] = ['http', 'grpc', 'amqp', 'js']
const PER_DOOR = 40
const PACE_MS = 25
// The deterministic kill points: each key kills the process that publishes it first, after the history script ran.
const CRASH_KEYS = ['http-9', 'grpc-15', 'amqp-21', 'js-27']
const RANDOM_KILLS = 1

const order = (seq: number, door: string) => ({ orderId: String(seq), status: door })

/** Calls Publish with the key until an answer comes; a new process listens on a new port. */
function grpcPublisher (edges: Edges, Notifications: Awaited<ReturnType<typeof notificationsService>>) {
  const clients = new Map<ExampleProcess, Promise<GrpcClient & { Publish: GrpcCall }>>()
  const clientOf = (edge: ExampleProcess) => {
    let client = clients.get(edge)
    if (client === undefined) {
      client = edges.grpcPort(edge).then((port) => new Notifications(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as GrpcClient & { Publish: GrpcCall })
      clients.set(edge, client)
    }
    return client
  }
  const close = async () => { for (const client of clients.values()) (await client.catch(() => null))?.close() }
  async function publish (key: string, request: Record<string, unknown>): Promise<Answer> {
    const metadata = new Metadata()
    metadata.set('x-api-key', API_KEY)
    for (let attempts = 1; ; attempts++) {
      const client = await clientOf(edges.current).catch(() => null)
      const reply = client === null
        ? null
        : await new Promise<{ ids: string[] } | null>((resolve) =>
          client.Publish({ ...request, idempotencyKey: key }, metadata, { deadline: Date.now() + 3000 }, (err, answer) => resolve(err === null ? answer : null)))
      if (reply !== null) return { id: reply.ids[0], replayed: false, attempts }
      await sleep(50)
    }
  }
  return { publish, close }
}

t.test('an edge SIGKILLed mid-stream, at chosen and random points: every keyed message through every door is shown once, in order', async (t) => {
  const { url: redisUrl, prefix } = await sharedRedis(t)
  const { edges, amqp, nats } = crashEdges(t, redisUrl, prefix, { CRASH_KEYS: CRASH_KEYS.join(',') })
  // The consumer exists before the edge (it finds it and keeps it) with a short ack wait: a dead edge's deliveries come back in 1 s, not 30.
  const jetstream = await natsProducer(t)
  const jsm = await jetstreamManager(jetstream.nc)
  await jsm.streams.add({ name: nats.stream, subjects: [`${nats.subjectPrefix}.>`], storage: StorageType.File, retention: RetentionPolicy.Workqueue })
  await jsm.consumers.add(nats.stream, { durable_name: nats.consumer, ack_policy: AckPolicy.Explicit, ack_wait: 1_000_000_000, max_ack_pending: 1000 })

  const first = await edges.start()
  // The queue is declared by the edge: messages sent before it exists would be unroutable.
  await first.logged('consuming from RabbitMQ', 15_000)

  const observer = await build(t, { redis: redisUrl, topicPrefix: prefix, streams: CRASH_STREAMS })
  const sockets = Object.fromEntries(await Promise.all(DOORS.map(async (door) => {
    const client = await connectUser(t, observer, `u-${door}`)
    await client.subscribe('order')
    return [door, client] as const
  }))) as Record<Door, Client>

  const grpc = grpcPublisher(edges, await notificationsService())
  t.teardown(grpc.close)
  const amqpProducer = producer(t, amqp.exchange)
  const answers: Record<'http' | 'grpc', Answer[]> = { http: [], grpc: [] }
  const produce = async (door: Door): Promise<void> => {
    for (let seq = 0; seq < PER_DOOR; seq++) {
      const key = `${door}-${seq}`
      const data = order(seq, door)
      const user = `u-${door}`
      if (door === 'http') answers.http.push(await httpPublish(edges, key, { stream: 'order', user, data }))
      if (door === 'grpc') answers.grpc.push(await grpc.publish(key, { stream: 'order', users: [user], dataJson: JSON.stringify(data) }))
      if (door === 'amqp') await amqpProducer.send(routingKey({ stream: 'order', user }), data, { messageId: key, durable: true })
      if (door === 'js') await jetstream.send(natsSubject({ stream: 'order', user }, nats.subjectPrefix), data, key)
      await sleep(PACE_MS)
    }
  }
  const state = { producing: true }
  const produced = Promise.all(DOORS.map(produce)).finally(() => { state.producing = false })

  // Kill after kill while the producers run: first at the chosen keys, then at random moments.
  const redis = new Redis(redisUrl)
  t.teardown(() => redis.quit())
  const crashesDone = async () => (await redis.exists(...CRASH_KEYS.map((key) => crashedKey(prefix, key)))) === CRASH_KEYS.length
  let randomKills = 0
  const deadline = Date.now() + 90_000
  while ((state.producing || !await crashesDone()) && Date.now() < deadline) {
    const edge = edges.current
    if (randomKills < RANDOM_KILLS && await crashesDone()) {
      await sleep(100 + Math.random() * 700)
      await kill(edge.child)
      randomKills++
    } else {
      // An exit listener added after the exit never fires: poll instead.
      await Promise.race([once(edge.child, 'exit'), sleep(200)])
      if (edge.child.exitCode === null && edge.child.signalCode === null) continue
    }
    t.equal(edge.child.signalCode, 'SIGKILL', `edge ${edges.started.length} was SIGKILLed`)
    await edges.start()
  }
  await produced
  t.ok(await crashesDone(), `every chosen key killed an edge (${CRASH_KEYS.join(', ')})`)
  t.ok(edges.started.length >= CRASH_KEYS.length + 1, `${edges.started.length} edge processes, ${edges.started.length - 1} SIGKILLed`)

  for (const door of DOORS) {
    const seen = await messagesOf(sockets[door], 'order', PER_DOOR)
    const shown = seen.map((f) => Number(f.data.orderId))
    if (door === 'http' || door === 'grpc') {
      t.same(shown, [...Array(PER_DOOR).keys()], `${door}: 0..${PER_DOOR - 1}, each once, in order`)
    } else {
      // A broker's consumers compete: a message the killed edge held unpublished comes back to
      // another (RabbitMQ at once, JetStream after ack_wait), possibly after later ones of its
      // subject that the others took meanwhile (docs/ingress.md, docs/outbox-jetstream.md). Once
      // each, always.
      t.same([...shown].sort((a, b) => a - b), [...Array(PER_DOOR).keys()], `${door}: 0..${PER_DOOR - 1}, each once`)
    }
    t.equal(new Set(seen.map((f) => f.id)).size, PER_DOOR, `${door}: ${PER_DOOR} distinct ids`)
    if (door === 'http' || door === 'grpc') {
      t.same(answers[door].map((a) => a.id), seen.map((f) => f.id), `${door}: every answer, retried or not, is the id shown`)
    }
  }
  const crashed = answers.http[Number(CRASH_KEYS[0].split('-')[1])]
  t.ok(crashed.attempts > 1 && crashed.replayed, 'the HTTP retry of the key that killed its edge answered the recorded id, Idempotent-Replayed')
  t.ok(answers.grpc[Number(CRASH_KEYS[1].split('-')[1])].attempts > 1, 'the gRPC call that killed its edge was retried')
  // Messages still unacked would come again: nothing is left in either broker.
  await until('the JetStream work queue to empty', async () => (await jsm.streams.info(nats.stream)).state.messages === 0, 15_000)
  await until('the AMQP queue to empty', async () => await queueDepth(amqpProducer.connection, amqp.queue) === 0, 15_000)
  await sleep(300)
  for (const door of DOORS) t.same(sockets[door].messages('order'), [], `${door}: nothing shown after the last`)
})
