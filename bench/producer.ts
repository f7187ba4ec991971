import { credentials, Metadata, type Client, type ClientDuplexStream } from '@grpc/grpc-js'
import { Connection } from 'rabbitmq-client'
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { insertNotification, natsSubject, notificationsService, routingKey, type GrpcPublishRequest, type GrpcPublishStreamReply } from '../plugins/index.js'
import { serve } from './lib/ipc.js'
import { API_KEY, notification, nowUs, PRIVATE_STREAM, userName } from './lib/shared.js'

// The ingress and pipelines scenarios' producer service, in a process of its own: publishes
// private notifications through RabbitMQ, POST /notifications, gRPC (unary, or one PublishStream
// call), JetStream, or commits them to the outbox several to a transaction; as fast as it can or
// at a rate. Each answers what it reached (rows and commits a second).

interface Batch { count: number, users: number, firstSeq: number }
type Send = (user: string, seq: number) => Promise<unknown>
/** Sends the notifications `seq` (to `userName(i)`) of one unit: one commit for the outbox, one message elsewhere. */
type SendMany = (unit: Array<{ user: string, seq: number }>) => Promise<unknown>

/** What a flood or a steady run reached, as the producer saw it: rows (messages) and commits (units) a second. */
interface Sent { rowsPerCommit: number, rowsPerSecond: number, commitsPerSecond: number, lagP99Ms?: number }

let connection: Connection | null = null
const publishers = new Map<string, Send>()
let grpc: (Client & { Publish: (req: unknown, md: Metadata, cb: (err: Error | null) => void) => void }) | null = null

function amqpSender (url: string, exchange: string): Send {
  if (connection === null) {
    connection = new Connection(url)
    connection.on('error', () => {})
  }
  let send = publishers.get(exchange)
  if (send === undefined) {
    const publisher = connection.createPublisher({ exchanges: [{ exchange, type: 'topic', durable: true }] })
    send = (user, seq) => publisher.send({ exchange, routingKey: routingKey({ stream: PRIVATE_STREAM, user }) }, notification(seq))
    publishers.set(exchange, send)
  }
  return send
}

function httpSender (port: number): Send {
  return async (user, seq) => {
    const res = await fetch(`http://127.0.0.1:${port}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
      body: JSON.stringify({ stream: PRIVATE_STREAM, user, data: notification(seq) })
    })
    await res.arrayBuffer()
    if (res.status !== 202) throw new Error(`POST /notifications answered ${res.status}`)
  }
}

const Notifications = await notificationsService()

function grpcSender (port: number): Send {
  grpc ??= new Notifications(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as typeof grpc
  const metadata = new Metadata()
  metadata.set('x-api-key', API_KEY)
  return (user, seq) => new Promise<void>((resolve, reject) => grpc!.Publish(
    { stream: PRIVATE_STREAM, users: [user], dataJson: JSON.stringify(notification(seq)) }, metadata, (err) => err === null ? resolve() : reject(err)))
}

type StreamCall = ClientDuplexStream<Partial<GrpcPublishRequest>, GrpcPublishStreamReply>
let grpcStream: { call: StreamCall, waiting: Map<number, (reply: GrpcPublishStreamReply) => void>, ref: number } | null = null

/** One PublishStream call for every send, each answered by its `ref`. */
function grpcStreamSender (port: number): Send {
  grpc ??= new Notifications(`127.0.0.1:${port}`, credentials.createInsecure()) as unknown as typeof grpc
  if (grpcStream === null) {
    const metadata = new Metadata()
    metadata.set('x-api-key', API_KEY)
    const call = (grpc as unknown as { PublishStream: (md: Metadata) => StreamCall }).PublishStream(metadata)
    const stream = { call, waiting: new Map<number, (reply: GrpcPublishStreamReply) => void>(), ref: 0 }
    call.on('data', (reply: GrpcPublishStreamReply) => {
      stream.waiting.get(reply.ref)?.(reply)
      stream.waiting.delete(reply.ref)
    })
    call.on('error', (err) => { console.error('grpc-stream broke:', err.message) })
    grpcStream = stream
  }
  const stream = grpcStream
  return (user, seq) => new Promise<void>((resolve, reject) => {
    const ref = ++stream.ref
    stream.waiting.set(ref, (reply) => reply.status === 0 ? resolve() : reject(new Error(`PublishStream answered ${reply.errorCode}`)))
    stream.call.write({ stream: PRIVATE_STREAM, users: [user], dataJson: JSON.stringify(notification(seq)), ref })
  })
}

let nats: NatsConnection | null = null
let pool: pg.Pool | null = null

/** JetStream: one `js.publish` per notification, acknowledged by the stream. */
async function natsSender (url: string, prefix: string): Promise<Send> {
  nats ??= await natsConnect({ servers: url })
  const js = jetstream(nats)
  return (user, seq) => js.publish(natsSubject({ stream: PRIVATE_STREAM, user }, prefix), JSON.stringify(notification(seq)))
}

/**
 * The outbox: a service's transaction that writes its notifications together (an order notifying
 * its parties), through the shipped helper: BEGIN, one `insertNotification` of the unit's
 * notifications, COMMIT. Each row's `t` is taken after BEGIN, just before the INSERT: what is
 * measured from it starts before the commit, not in the pool's queue (the lag, apart).
 */
function outboxSender (url: string, table: string): SendMany {
  pool ??= new pg.Pool({ connectionString: url, max: 16 })
  return async (unit) => {
    const client = await pool!.connect()
    try {
      await client.query('BEGIN')
      const t = nowUs()
      await insertNotification(client, unit.map(({ user, seq }) => ({ stream: PRIVATE_STREAM, user, data: notification(seq, t) })), { table })
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }
}

/** The unit of `count` messages from `firstSeq` that starts at message `i`. */
function unitAt (i: number, perUnit: number, { count, users, firstSeq }: Batch): Array<{ user: string, seq: number }> {
  return Array.from({ length: Math.min(perUnit, count - i) }, (_, j) => ({ user: userName((i + j) % users), seq: firstSeq + i + j }))
}

function sent (rows: number, perUnit: number, startUs: number): Sent {
  const seconds = (nowUs() - startUs) / 1e6
  return { rowsPerCommit: perUnit, rowsPerSecond: Math.round(rows / seconds), commitsPerSecond: Math.round(Math.ceil(rows / perUnit) / seconds) }
}

/** `count` messages in units of `perUnit`, about 200 messages in flight: as fast as the receiving side takes them. */
async function flood (send: SendMany, batch: Batch, perUnit: number): Promise<Sent> {
  const start = nowUs()
  let next = 0
  await Promise.all(Array.from({ length: Math.ceil(200 / perUnit) }, async () => {
    while (next < batch.count) {
      const i = next
      next += perUnit
      await send(unitAt(i, perUnit, batch))
    }
  }))
  return sent(batch.count, perUnit, start)
}

/**
 * `count` messages at `rate` per second in units of `perUnit` from a 1 ms timer; resolves once
 * every unit settled, with the lag p99: from when a unit was due to when it was sent (committed).
 */
async function steady (send: SendMany, batch: Batch, rate: number, perUnit: number): Promise<Sent> {
  const start = nowUs()
  const sends: Array<Promise<unknown>> = []
  const lags: number[] = []
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      // A unit is due when its last message is.
      while (next < batch.count && nowUs() - start >= (Math.min(next + perUnit, batch.count) - 1) * 1e6 / rate) {
        const due = start + (Math.min(next + perUnit, batch.count) - 1) * 1e6 / rate
        sends.push(send(unitAt(next, perUnit, batch)).then(() => { lags.push((nowUs() - due) / 1000) }))
        next += perUnit
      }
      if (next >= batch.count) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(sends)
  lags.sort((a, b) => a - b)
  return { ...sent(batch.count, perUnit, start), lagP99Ms: Math.round(lags[Math.floor(lags.length * 0.99)] * 10) / 10 }
}

/** `rowsPerCommit`: the outbox's notifications per transaction; every other way sends one message at a time. */
type SenderArgs = { via: string, url: string, exchange: string, port: number, prefix?: string, table?: string, rowsPerCommit?: number }

async function oneAtATime (args: SenderArgs): Promise<Send> {
  if (args.via === 'nats') return natsSender(args.url, args.prefix!)
  if (args.via === 'amqp') return amqpSender(args.url, args.exchange)
  if (args.via === 'http') return httpSender(args.port)
  if (args.via === 'grpc-stream') return grpcStreamSender(args.port)
  return grpcSender(args.port)
}

async function sender (args: SenderArgs): Promise<{ send: SendMany, perUnit: number }> {
  if (args.via === 'outbox') return { send: outboxSender(args.url, args.table!), perUnit: args.rowsPerCommit ?? 1 }
  const send = await oneAtATime(args)
  return { send: async ([{ user, seq }]) => send(user, seq), perUnit: 1 }
}

serve({
  flood: async (args: Batch & SenderArgs) => {
    const { send, perUnit } = await sender(args)
    return flood(send, args, perUnit)
  },
  steady: async (args: Batch & SenderArgs & { rate: number }) => {
    const { send, perUnit } = await sender(args)
    return steady(send, args, args.rate, perUnit)
  },
  close: async () => {
    grpcStream?.call.end()
    grpc?.close()
    await nats?.close()
    await pool?.end()
    await connection?.close()
    setImmediate(() => process.exit(0))
  }
}, {})
