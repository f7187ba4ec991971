import t from 'tap'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { credentials, loadPackageDefinition, Metadata, status, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { defineStreams, MemoryIdempotencyStore, NOTIFY_PROTO_PATH, RedisIdempotencyStore, type IdempotencyEntry, type IdempotencyStore } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, build, connectUser, type Edge } from './helpers.js'
import { amqpNames, producer, queueDepth } from './rabbitmq.js'
import { redisServer, until, type RedisServer } from './redis-server.js'
import { allOrUnknown, isOutcomeUnknown, mayHaveRun, outcomeUnknown } from '../plugins/outcome.js'
import mqemitter, { type MQEmitter } from 'mqemitter'

// A publish whose effect in Redis is unknown (Redis stalled after the key was claimed) answers
// FST_NOTIFY_OUTCOME_UNKNOWN; the key stays held, and a same-key retry gets the original ids as
// soon as Redis answers again: every message is shown once. The stall is a real one: `DEBUG SLEEP`
// on a private redis-server, sent on the edge's own connection right after the claim, so the
// append queued behind it is certain to wait (or SIGSTOP, for the bus's own connection).

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

const STALL_S = 2
const data = { orderId: '1', status: 'placed' }
const streams = defineStreams([...STREAMS, { name: 'live', kind: 'public' }])

/** The edge's real Redis idempotency store, which can stall Redis right after its next claim. */
class StallAfterClaim extends RedisIdempotencyStore {
  #stall: (() => void) | null = null

  /** The next claim that takes a key runs `fault`: `started` once it is sent, `recovered` once it is over. */
  arm (fault: () => Promise<unknown>): Stall {
    let started!: () => void
    const stall: Stall = {
      started: new Promise((resolve) => { started = resolve }),
      recovered: new Promise((resolve) => {
        this.#stall = () => {
          fault().then(() => resolve(), () => resolve())
          started()
        }
      })
    }
    return stall
  }

  override async claim (key: string, token: string, pendingTtl: number): Promise<IdempotencyEntry | null> {
    const entry = await super.claim(key, token, pendingTtl)
    const stall = this.#stall
    if (entry === null && stall !== null) {
      this.#stall = null
      stall()
    }
    return entry
  }
}

interface Stall { started: Promise<void>, recovered: Promise<void> }

interface StallingEdge extends Edge {
  redis: RedisServer
  store: StallAfterClaim
  /** DEBUG SLEEP on the edge's own connection after the next claim: the append waits behind it. */
  sleepAfterClaim (): Stall
  /** SIGSTOP after the next claim, SIGCONT `STALL_S` later: every connection waits. */
  stopAfterClaim (): Stall
}

async function stallingEdge (t: Test, opts: Record<string, unknown> = {}): Promise<StallingEdge> {
  const redis = await redisServer(t, ['--enable-debug-command', 'yes'])
  // As the edge builds its own: no offline queue, nothing resent after a reconnect.
  const client = new Redis(redis.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  await once(client, 'ready')
  const store = new StallAfterClaim({ client, keyPrefix: 'idem:' })
  const edge = await build(t, { redis: { client }, idempotency: { store }, streams, ...opts })
  return {
    ...edge,
    redis,
    store,
    sleepAfterClaim: () => store.arm(() => client.call('DEBUG', 'SLEEP', String(STALL_S))),
    stopAfterClaim: () => store.arm(async () => {
      redis.pause()
      await new Promise((resolve) => setTimeout(resolve, STALL_S * 1000))
      redis.resume()
    })
  }
}

async function post (edge: Edge, body: unknown, key?: string): Promise<{ status: number, body: Record<string, any> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'x-api-key': API_KEY }
  if (key !== undefined) headers['idempotency-key'] = key
  const res = await fetch(`${edge.http}/notifications`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

/** Retries on 503 as a publisher would, every 100 ms; the answers seen, the last one a success. */
async function retryUntilAnswered<T extends { code: string | null }> (attempt: () => Promise<T>): Promise<T[]> {
  const answers: T[] = []
  for (;;) {
    const answer = await attempt()
    answers.push(answer)
    if (answer.code === null) return answers
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const key = (): string => `k-${randomBytes(4).toString('hex')}`

t.test('HTTP: a stalled append answers OUTCOME_UNKNOWN; a same-key retry gets the original id within the stall plus a second', async (t) => {
  const edge = await stallingEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const k = key()
  const { recovered } = edge.sleepAfterClaim()
  const started = Date.now()
  const answers = await retryUntilAnswered(async () => {
    const res = await post(edge, { stream: 'order', user: 'alice', data }, k)
    return { ...res, code: res.status === 202 ? null : res.body.code as string }
  })
  const took = Date.now() - started
  t.same(answers[0].code, 'FST_NOTIFY_OUTCOME_UNKNOWN', 'the first answer: unknown, not "not published"')
  t.equal(answers[0].status, 503)
  for (const a of answers.slice(1, -1)) t.equal(a.status, 503, `a retry during the stall answers 503 (${a.code})`)
  t.ok(took < (STALL_S + 1.5) * 1000, `answered ${took} ms after the first attempt (stall ${STALL_S} s)`)
  const shown = await alice.event('message')
  t.equal(answers.at(-1)!.body.id, shown.id, 'the retry answers the id of the message that was shown')
  await recovered
  t.same((await post(edge, { stream: 'order', user: 'alice', data }, k)).body, answers.at(-1)!.body, 'later retries answer the same')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'shown once')
})

t.test('HTTP without a key: the answer says the outcome is unknown, and the message did go out', async (t) => {
  const edge = await stallingEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('promotional')
  // The stall comes after a keyed claim; this unkeyed publish is queued behind it on the connection.
  const { started, recovered } = edge.sleepAfterClaim()
  const keyed = post(edge, { stream: 'promotional', data: { n: 1 } }, key())
  await started
  const bare = await post(edge, { stream: 'promotional', data: { n: 2 } })
  t.same([bare.status, bare.body.code], [503, 'FST_NOTIFY_OUTCOME_UNKNOWN'])
  t.equal((await keyed).body.code, 'FST_NOTIFY_OUTCOME_UNKNOWN')
  await recovered
  const got = [await alice.event('message'), await alice.event('message')].map((m) => m.data.n)
  t.same(got.sort(), [1, 2], 'both went out once Redis answered: unknown meant unknown')
})

t.test('a stream without history: the key stays held until the bus answers, and a retry gets that answer', async (t) => {
  const edge = await stallingEdge(t)
  const viewer = await connectUser(t, edge, 'viewer')
  await viewer.subscribe('live')
  const k = key()
  edge.stopAfterClaim()
  const started = Date.now()
  const answers = await retryUntilAnswered(async () => {
    const res = await post(edge, { stream: 'live', data: { n: 1 } }, k)
    return { ...res, code: res.status === 202 ? null : res.body.code as string }
  })
  t.equal(answers[0].code, 'FST_NOTIFY_OUTCOME_UNKNOWN')
  const took = Date.now() - started
  t.ok(took < (STALL_S + 1.5) * 1000, `answered ${took} ms after the first attempt`)
  const shown = await viewer.event('message')
  t.equal(answers.at(-1)!.body.id, shown.id)
  await viewer.request({ event: 'ping' }, 'pong')
  t.same(viewer.messages(), [], 'shown once')
})

t.test('gRPC: UNAVAILABLE with x-error-code FST_NOTIFY_OUTCOME_UNKNOWN, then the original ids', async (t) => {
  const edge = await stallingEdge(t, { grpc: { apiKey: API_KEY, port: 0 } })
  const definition = loadSync(NOTIFY_PROTO_PATH, { keepCase: true, defaults: true })
  const Notifications = ((loadPackageDefinition(definition).notify as GrpcObject).v1 as GrpcObject).Notifications as ServiceClientConstructor
  const client = new Notifications(`127.0.0.1:${edge.app.notifyGrpc.port}`, credentials.createInsecure()) as unknown as {
    Publish: (request: unknown, metadata: Metadata, callback: (err: ServiceError | null, reply: { ids: string[] }) => void) => void
    close: () => void
  }
  t.teardown(() => client.close())
  const [alice, bob] = await Promise.all(['alice', 'bob'].map((user) => connectUser(t, edge, user)))
  for (const c of [alice, bob]) await c.subscribe('reward')
  const k = key()
  edge.sleepAfterClaim()
  const started = Date.now()
  const answers = await retryUntilAnswered(async () => {
    const metadata = new Metadata()
    metadata.set('x-api-key', API_KEY)
    const { err, reply } = await new Promise<{ err: ServiceError | null, reply: { ids: string[] } }>((resolve) =>
      client.Publish({ stream: 'reward', users: ['alice', 'bob'], data_json: '{"points":5}', idempotency_key: k }, metadata, (err, reply) => resolve({ err, reply })))
    return { err, reply, code: err === null ? null : String(err.metadata.get('x-error-code')[0]) }
  })
  t.equal(answers[0].err?.code, status.UNAVAILABLE)
  t.equal(answers[0].code, 'FST_NOTIFY_OUTCOME_UNKNOWN', 'told apart from a bus that refused')
  t.match(answers[0].err?.details, /outcome unknown/)
  t.ok(Date.now() - started < (STALL_S + 1.5) * 1000)
  const ids = answers.at(-1)!.reply.ids
  t.same([(await alice.event('message')).id, (await bob.event('message')).id], ids, 'each user got the message the answer names')
  for (const c of [alice, bob]) {
    await c.request({ event: 'ping' }, 'pong')
    t.same(c.messages(), [], 'shown once')
  }
})

t.test('AMQP: the message is not acknowledged while its outcome is unknown; the redelivery is shown once', async (t) => {
  const names = amqpNames(t)
  const edge = await stallingEdge(t, { amqp: { exchange: names.exchange, queue: names.queue, retryDelay: 100 } })
  await until('consuming', () => edge.app.notifyAmqp.health().state === 'consuming', 15_000)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const p = producer(t, names.exchange)
  const { recovered } = edge.sleepAfterClaim()
  await p.send('private.alice.order', data, { messageId: key() })
  await until('a requeue', () => edge.app.notifyAmqp.stats.requeued >= 1)
  t.equal(edge.app.notifyAmqp.stats.acked + edge.app.notifyAmqp.stats.replayed, 0, 'not acknowledged')
  await recovered
  await until('the ack', () => edge.app.notifyAmqp.stats.acked + edge.app.notifyAmqp.stats.replayed === 1, 10_000)
  t.equal(await queueDepth(p.connection, names.queue), 0)
  await alice.event('message')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'shown once')
})

t.test('an instance that died after its append, before recording the answer: a redelivery answers the recorded ids', async (t) => {
  const edge = await stallingEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const k = key()
  // What a SIGKILLed holder leaves: its pending marker, and the append script's own record.
  await edge.store.claim(k, 'the-dead-holder', 600)
  const { store } = edge.app.notifyHistory
  const topic = edge.app.notify.streams.get('order')!.topic('alice')
  const { template } = await import('../plugins/message.js').then(({ messageTemplate }) => ({ template: messageTemplate('order', data) }))
  const appended = await store.append(topic, template, { size: 100, ttl: 3600 }, { key: k, ttl: 600 })
  t.equal((await alice.event('message')).id, appended.id)
  const res = await post(edge, { stream: 'order', user: 'alice', data }, k)
  t.equal(res.status, 202, 'not held off by the dead holder\'s marker')
  t.equal(res.body.id, appended.id, 'the id the dead instance published')
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'shown once')
})

/** An in-process emitter whose publishes are held until `release()`: a bus connection stalled while the rest answers. */
function heldEmitter (): { emitter: MQEmitter, release: () => void, hold: () => void } {
  const real = mqemitter()
  const held: Array<() => void> = []
  let holding = true
  const emitter = Object.assign(Object.create(real) as MQEmitter, {
    emit: (message: Record<string, unknown>, callback?: (err?: Error) => void) => {
      const go = (): void => { real.emit(message as never, callback) }
      if (holding) held.push(go)
      else go()
      return emitter
    }
  })
  return { emitter, release: () => { holding = false; held.splice(0).forEach((go) => go()) }, hold: () => { holding = true } }
}

t.test('a key stays held past its pendingTtl while the bus has not answered, and gets the late answer', async (t) => {
  const { emitter, release } = heldEmitter()
  const edge = await build(t, { streams, bus: { emitter, publishTimeout: 200 }, idempotency: { pendingTtl: 1 } })
  const viewer = await connectUser(t, edge, 'viewer')
  await viewer.subscribe('live')
  const k = key()
  const first = await post(edge, { stream: 'live', data: { n: 1 } }, k)
  t.same([first.status, first.body.code], [503, 'FST_NOTIFY_OUTCOME_UNKNOWN'])
  // Twice the pending ttl: the marker lives on because its holder extends it.
  await new Promise((resolve) => setTimeout(resolve, 2200))
  const during = await post(edge, { stream: 'live', data: { n: 1 } }, k)
  t.same([during.status, during.body.code], [409, 'FST_NOTIFY_IDEMPOTENCY_IN_PROGRESS'], 'still held, never published a second time')
  const durable = await post(edge, { stream: 'promotional', data: { n: 2 } })
  t.same([durable.status, durable.body.code], [503, 'FST_NOTIFY_OUTCOME_UNKNOWN'], 'a memory history appends, then the bus leaves it unknown')
  release()
  const shown = await viewer.event('message')
  const answers = await retryUntilAnswered(async () => {
    const res = await post(edge, { stream: 'live', data: { n: 1 } }, k)
    return { ...res, code: res.status === 202 ? null : res.body.code as string }
  })
  t.equal(answers.at(-1)!.body.id, shown.id, 'the late answer was recorded')
  await viewer.request({ event: 'ping' }, 'pong')
  t.same(viewer.messages(), [], 'shown once')
})

t.test('allOrUnknown: one unknown among successes is unknown with all their late answers; a definite failure wins', async (t) => {
  const unknown = (late: Promise<unknown>): Promise<never> => Promise.reject(outcomeUnknown('stalled', late))
  const err = await allOrUnknown([Promise.resolve(1), unknown(Promise.resolve(2))]).catch((e: unknown) => e)
  t.ok(isOutcomeUnknown(err))
  t.same(await (err as { late: Promise<unknown> }).late, [1, 2])
  await t.rejects(allOrUnknown([unknown(new Promise(() => {})), Promise.reject(new Error('refused'))]), { message: 'refused' })
  t.same(await allOrUnknown([Promise.resolve('a'), Promise.resolve('b')]), ['a', 'b'])
  t.notOk(mayHaveRun(Object.assign(new Error('ERR boom'), { name: 'ReplyError' })), 'Redis refused it')
  t.notOk(mayHaveRun(new Error("Stream isn't writeable and enableOfflineQueue options is false")), 'never sent')
  t.ok(mayHaveRun(new Error('Connection is closed.')), 'lost in flight')
  t.notOk(isOutcomeUnknown(new Error('x')))
})

/** A memory idempotency store (so claims never wait for Redis) that stalls the history's Redis after a claim. */
class MemoryStallAfterClaim extends MemoryIdempotencyStore {
  stall: (() => void) | null = null
  override async claim (key: string, token: string, pendingTtl: number): Promise<IdempotencyEntry | null> {
    const entry = await super.claim(key, token, pendingTtl)
    if (entry === null && this.stall !== null) {
      this.stall()
      this.stall = null
    }
    return entry
  }
}

t.test('a retry that finds the key pending publishes under it: unknown again during the stall, the original id after', async (t) => {
  const redis = await redisServer(t, ['--enable-debug-command', 'yes'])
  const client = new Redis(redis.url, { enableOfflineQueue: false, autoResendUnfulfilledCommands: false })
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  await once(client, 'ready')
  const store = new MemoryStallAfterClaim()
  let recovered!: Promise<unknown>
  // Long enough that the retry, a second later, times out as well.
  store.stall = () => { recovered = client.call('DEBUG', 'SLEEP', String(STALL_S + 1)) }
  const edge = await build(t, { redis: { client }, idempotency: { store }, streams })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const k = key()
  const first = await post(edge, { stream: 'order', user: 'alice', data }, k)
  const second = await post(edge, { stream: 'order', user: 'alice', data }, k)
  t.same([first.body.code, second.body.code], ['FST_NOTIFY_OUTCOME_UNKNOWN', 'FST_NOTIFY_OUTCOME_UNKNOWN'], 'the retry ran the publish too, and it waited as well')
  await recovered
  const shown = await alice.event('message')
  const third = await post(edge, { stream: 'order', user: 'alice', data }, k)
  t.equal(third.body.id, shown.id)
  await alice.request({ event: 'ping' }, 'pong')
  t.same(alice.messages(), [], 'shown once: both appends under the key wrote one message')
})

t.test('Redis lost with the append in flight: the key is not recorded, and a retry publishes once on the new Redis', async (t) => {
  const edge = await stallingEdge(t)
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  const k = key()
  const { started } = edge.sleepAfterClaim()
  const pending = post(edge, { stream: 'order', user: 'alice', data }, k)
  await started
  await edge.redis.stop()
  t.equal((await pending).body.code, 'FST_NOTIFY_OUTCOME_UNKNOWN')
  await edge.redis.start()
  const answers = await retryUntilAnswered(async () => {
    const res = await post(edge, { stream: 'order', user: 'alice', data }, k)
    return { ...res, code: res.status === 202 ? null : res.body.code as string }
  })
  t.equal(answers.at(-1)!.status, 202)
})

t.test('a store that fails while a publish is unanswered is logged, and closing the app stops the wait', async (t) => {
  const { emitter, release, hold } = heldEmitter()
  const failing: IdempotencyStore = {
    claim: async () => null,
    complete: async () => { throw new Error('gone') },
    release: async () => {},
    extend: async () => { throw new Error('gone') }
  }
  const edge = await build(t, { streams, bus: { emitter, publishTimeout: 100 }, idempotency: { store: failing, pendingTtl: 1 } })
  const warned: string[] = []
  edge.app.log.warn = ((_obj: unknown, msg: string) => { warned.push(msg) }) as typeof edge.app.log.warn
  t.equal((await post(edge, { stream: 'live', data: { n: 1 } }, key())).body.code, 'FST_NOTIFY_OUTCOME_UNKNOWN')
  await until('a failed extend', () => warned.some((m) => m.includes('not extended')))
  release()
  await until('a failed complete', () => warned.some((m) => m.includes('late answer')))
  hold()
  t.equal((await post(edge, { stream: 'live', data: { n: 2 } }, key())).body.code, 'FST_NOTIFY_OUTCOME_UNKNOWN', 'the held bus answers late again')
  await edge.app.close()
  t.pass('closed with a publish still unanswered')
})
