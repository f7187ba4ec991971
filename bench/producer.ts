import { credentials, Metadata, type Client, type ClientDuplexStream } from '@grpc/grpc-js'
import { Connection } from 'rabbitmq-client'
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node'
import { jetstream } from '@nats-io/jetstream'
import pg from 'pg'
import { insertNotification, natsSubject, notificationsService, routingKey, type GrpcPublishRequest, type GrpcPublishStreamReply } from '../plugins/index.js'
import { serve } from './lib/ipc.js'
import { API_KEY, notification, nowUs, PRIVATE_STREAM, userName } from './lib/shared.js'

// The ingress scenario's producer service, in a process of its own: publishes private
// notifications through RabbitMQ, POST /notifications or gRPC (unary, or one PublishStream call),
// as fast as it can or at a rate.

interface Batch { count: number, users: number, firstSeq: number }
type Send = (user: string, seq: number) => Promise<unknown>

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

/** The outbox: one committed INSERT per notification, as a service notifying in its transaction does. */
function outboxSender (url: string, table: string): Send {
  pool ??= new pg.Pool({ connectionString: url, max: 16 })
  return (user, seq) => insertNotification(pool!, { stream: PRIVATE_STREAM, user, data: notification(seq) }, { table })
}

/** `count` sends, `window` at a time: as fast as the receiving side takes them. */
async function flood (send: Send, { count, users, firstSeq }: Batch, window = 200): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: window }, async () => {
    while (next < count) {
      const i = next++
      await send(userName(i % users), firstSeq + i)
    }
  }))
}

/** `count` sends at `rate` per second from a 1 ms timer; resolves once every send settled. */
async function steady (send: Send, { count, users, firstSeq }: Batch, rate: number): Promise<void> {
  const start = nowUs()
  const sends: Array<Promise<unknown>> = []
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(count, Math.floor((nowUs() - start) * rate / 1e6) + 1)
      while (sent < due) { const i = sent++; sends.push(send(userName(i % users), firstSeq + i)) }
      if (sent >= count) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.all(sends)
}

type SenderArgs = { via: string, url: string, exchange: string, port: number, prefix?: string, table?: string }

async function sender (args: SenderArgs): Promise<Send> {
  if (args.via === 'nats') return natsSender(args.url, args.prefix!)
  if (args.via === 'outbox') return outboxSender(args.url, args.table!)
  if (args.via === 'amqp') return amqpSender(args.url, args.exchange)
  if (args.via === 'http') return httpSender(args.port)
  if (args.via === 'grpc-stream') return grpcStreamSender(args.port)
  return grpcSender(args.port)
}

serve({
  flood: async (args: Batch & SenderArgs) => flood(await sender(args), args),
  steady: async (args: Batch & SenderArgs & { rate: number }) => steady(await sender(args), args, args.rate),
  close: async () => {
    grpcStream?.call.end()
    grpc?.close()
    await nats?.close()
    await pool?.end()
    await connection?.close()
    setImmediate(() => process.exit(0))
  }
}, {})
