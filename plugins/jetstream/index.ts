import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { JsMsg } from '@nats-io/jetstream'
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node'
import { Counter, Gauge } from 'prom-client'
import { rejectReason } from '../amqp/message.js'
import { InvalidOptionError } from '../errors.js'
import { ensureIdempotency } from '../idempotency/index.js'
import { ingressTrace } from '../tracing.js'
import { positiveInteger, within } from '../util.js'
import { mapDelivery, type JetStreamRejectReason } from './message.js'
import { JetStreamRunner } from './runner.js'

export * from './subject.js'
export type { JetStreamRejectReason } from './message.js'

export interface NotifyJetStreamOptions {
  /** The server(s): a `nats://` URL, several, or `@nats-io/transport-node` connection options. @default 'nats://127.0.0.1:4222' */
  servers?: string | string[] | NodeConnectionOptions
  /** First token of every subject (`<prefix>.public.<stream>`, `<prefix>.private.<user>.<stream>`, `<prefix>.channel.<stream>.<key>`). @default 'notify' */
  subjectPrefix?: string
  /** The JetStream stream holding `<prefix>.>`. @default 'notify' */
  stream?: string
  /** The durable pull consumer every edge instance shares: each message is handled by one of them. @default 'notify-edge' */
  consumer?: string
  /**
   * Creates the stream (work-queue retention, file storage) and the consumer when they are
   * missing, at every (re)connection. Leave false where they are provisioned beforehand
   * (docs/outbox-jetstream.md gives the `nats` commands). @default true
   */
  setup?: boolean
  /** A stream that dead messages go to, on subject `<deadLetterStream>.<reason>`, created with `setup`. @default none: they are terminated only */
  deadLetterStream?: string
  /** Unacknowledged messages in flight per instance, published concurrently (in order per subject). @default 100 */
  prefetch?: number
  /** Largest body in bytes; a larger message is dead. @default 65536, as `POST /notifications` */
  maxBodyBytes?: number
  /** Milliseconds a message whose publish failed for a passing reason (bus down) waits before redelivery. @default 1000 */
  retryDelay?: number
  /** Milliseconds `app.close()` gives in-flight messages before the connection is dropped (the server redelivers them). @default 5000 */
  closeTimeout?: number
}

/** `connecting` until the first consume, `reconnecting` while the server is away, `closed` after `app.close()`. */
export type JetStreamState = 'connecting' | 'consuming' | 'reconnecting' | 'closed'

/** Counts of what the consumer did with messages since it started, as the AMQP ingress's. */
export interface JetStreamStats {
  /** Published and acknowledged. */
  acked: number
  /** Acknowledged without publishing: their key had published already. */
  replayed: number
  /** Terminated (and dead-lettered when configured): they can never be published. */
  rejected: number
  /** Negatively acknowledged after a passing failure: redelivered after `retryDelay`. */
  requeued: number
}

/** `app.notifyJetStream`: the consumer's state and counts, e.g. for `/health`. */
export interface NotifyJetStream {
  /** The subjects' first token: publish to `natsSubject(target, subjectPrefix)`. */
  readonly subjectPrefix: string
  readonly stream: string
  readonly consumer: string
  readonly stats: Readonly<JetStreamStats>
  /** The connection once made (e.g. to publish on); closed by the plugin on app close. */
  connection (): NatsConnection | null
  health (): { state: JetStreamState, stream: string, consumer: string }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The NATS JetStream ingress (see `NotifyJetStream`). */
    notifyJetStream: NotifyJetStream
  }
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/

function name (option: string, value: unknown, fallback?: string): string | undefined {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !NAME.test(value)) throw new InvalidOptionError(`${option} must match ${NAME}`)
  return value
}

function connectionOptions (servers: unknown): NodeConnectionOptions {
  if (typeof servers === 'string' || (Array.isArray(servers) && servers.length > 0 && servers.every((s) => typeof s === 'string'))) return { servers }
  if (servers !== null && typeof servers === 'object' && !Array.isArray(servers)) return servers as NodeConnectionOptions
  throw new InvalidOptionError('servers must be a nats:// URL, a list of them, or connection options')
}

async function fastifyNotifyJetStream (app: FastifyInstance, opts: NotifyJetStreamOptions): Promise<void> {
  const connection = connectionOptions(opts.servers ?? 'nats://127.0.0.1:4222')
  const prefix = name('subjectPrefix', opts.subjectPrefix, 'notify') as string
  const stream = name('stream', opts.stream, 'notify') as string
  const consumer = name('consumer', opts.consumer, 'notify-edge') as string
  const deadLetterStream = name('deadLetterStream', opts.deadLetterStream)
  const setup = opts.setup ?? true
  if (typeof setup !== 'boolean') throw new InvalidOptionError('setup must be a boolean')
  const prefetch = positiveInteger('prefetch', opts.prefetch, 100)
  const maxBodyBytes = positiveInteger('maxBodyBytes', opts.maxBodyBytes, 65536)
  const retryDelay = positiveInteger('retryDelay', opts.retryDelay, 1000)
  const closeTimeout = positiveInteger('closeTimeout', opts.closeTimeout, 5000)
  await ensureIdempotency(app)

  const log = app.log.child({ ingress: 'jetstream', stream, consumer })
  const stats: JetStreamStats = { acked: 0, replayed: 0, rejected: 0, requeued: 0 }
  let failing = false

  const runner = new JetStreamRunner({ connection, prefix, stream, consumer, deadLetterStream, setup, prefetch, retryDelay, log, handle })
  const counters = jetStreamMetrics(app, () => runner.health() === 'consuming')

  async function reject (msg: JsMsg, reason: JetStreamRejectReason, message: string): Promise<void> {
    log.warn({ reason, subject: msg.subject.slice(0, 255), seq: msg.seq, redelivered: msg.redelivered }, `notify edge: JetStream message rejected: ${message}`)
    if (deadLetterStream !== undefined && !await runner.deadLetter(msg, reason)) {
      msg.nak(retryDelay)
      stats.requeued++
      counters?.outcomes.inc({ outcome: 'requeued' })
      return
    }
    msg.term()
    stats.rejected++
    counters?.outcomes.inc({ outcome: 'rejected' })
    counters?.rejected.inc({ reason })
  }

  async function handle (msg: JsMsg): Promise<void> {
    const mapped = mapDelivery({ subject: msg.subject, data: msg.data, seq: msg.seq, msgId: msg.headers?.get('Nats-Msg-Id') || undefined }, prefix, stream, maxBodyBytes)
    if ('reason' in mapped) return await reject(msg, mapped.reason, mapped.message)
    try {
      // A missing header reads as '': no trace to continue.
      const { replayed } = await ingressTrace(app.notifyTracer, msg.headers?.get('traceparent') || undefined, () =>
        app.notifyIdempotency.publish(mapped.idempotencyKey, mapped.input))
      failing = false
      runner.ack(msg)
      stats[replayed ? 'replayed' : 'acked']++
      counters?.outcomes.inc({ outcome: replayed ? 'replayed' : 'acked' })
    } catch (err) {
      const reason = rejectReason(err)
      if (reason !== null) return await reject(msg, reason as JetStreamRejectReason, (err as Error).message)
      if (!failing) log.warn({ err }, 'notify edge: JetStream message not published; redelivered until the edge can publish again')
      failing = true
      msg.nak(retryDelay)
      stats.requeued++
      counters?.outcomes.inc({ outcome: 'requeued' })
    }
  }

  app.decorate('notifyJetStream', {
    subjectPrefix: prefix,
    stream,
    consumer,
    stats,
    connection: () => runner.connection,
    health: () => ({ state: runner.health(), stream, consumer })
  })
  app.addHook('onReady', async () => { runner.start() })
  app.addHook('onClose', async () => {
    if (await within(closeTimeout + 1000, runner.close(closeTimeout)) === null) log.warn('notify edge: JetStream consumer did not stop in time')
  })
}

function jetStreamMetrics (app: FastifyInstance, up: () => boolean): { outcomes: Counter, rejected: Counter } | null {
  if (!app.hasDecorator('notifyMetrics')) return null
  const { registry, prefix } = app.notifyMetrics
  const registers = [registry]
  // eslint-disable-next-line no-new
  new Gauge({ name: `${prefix}jetstream_consuming`, help: '1 while the JetStream consumer is connected and consuming', registers, collect () { this.set(up() ? 1 : 0) } })
  return {
    outcomes: new Counter({ name: `${prefix}jetstream_messages_total`, help: 'JetStream messages by outcome: acked, replayed (idempotent duplicate), rejected, requeued', labelNames: ['outcome'], registers }),
    rejected: new Counter({ name: `${prefix}jetstream_rejected_total`, help: 'JetStream messages terminated, by reason', labelNames: ['reason'], registers })
  }
}

export const notifyJetStream = fp(fastifyNotifyJetStream, {
  fastify: '5.x',
  name: 'notify-edge-jetstream',
  dependencies: ['notify-edge-notify']
})
export default notifyJetStream
