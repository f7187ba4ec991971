import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge } from 'prom-client'
import type { AsyncMessage, Connection, ConnectionOptions, Consumer, ConsumerStatus } from 'rabbitmq-client'
import { InvalidOptionError } from '../errors.js'
import { ensureIdempotency } from '../idempotency/index.js'
import { positiveInteger, within } from '../util.js'
import { delivery, rejectReason, Rejection, type RejectReason } from './message.js'
import { ingressTrace } from '../tracing.js'

export * from './routing-key.js'
export type { RejectReason } from './message.js'

export interface NotifyAmqpOptions {
  /** The broker: an `amqp://` URL or rabbitmq-client connection options (TLS, `retryLow`/`retryHigh` backoff, …). @default 'amqp://guest:guest@127.0.0.1:5672' */
  url?: string | ConnectionOptions
  /** Durable topic exchange producers publish to. @default 'notifications' */
  exchange?: string
  /** Durable queue shared by every edge instance: each message is handled by one of them. @default 'notify-edge' */
  queue?: string
  /** Exchange (topic, durable) that rejected messages go to, set as the queue's `x-dead-letter-exchange`. @default none: rejected messages are dropped */
  deadLetterExchange?: string
  /** Durable queue bound to `deadLetterExchange` with `#`, holding rejected messages for inspection. @default none */
  deadLetterQueue?: string
  /**
   * Declares the queue with `x-single-active-consumer`: one instance consumes at a time, the others
   * stand by, so messages are published in queue order (competing consumers may reorder messages
   * sent close together). Costs the parallelism of several consumers. @default false
   */
  singleActiveConsumer?: boolean
  /** Unacknowledged messages in flight per instance (`basic.qos`), all published concurrently. @default 100 */
  prefetch?: number
  /** Largest body in bytes; a larger message is rejected. @default 65536, as `POST /notifications` */
  maxBodyBytes?: number
  /** Milliseconds a message whose publish failed for a passing reason (bus down) waits before it is requeued. @default 1000 */
  retryDelay?: number
  /** Milliseconds `app.close()` gives in-flight messages before the connection is dropped (the broker requeues them). @default 5000 */
  closeTimeout?: number
}

/** `connecting` until the first consume, `reconnecting` while the broker is away, `closed` after `app.close()`. */
export type AmqpState = 'connecting' | 'consuming' | 'reconnecting' | 'closed'

/** Counts of what the consumer did with deliveries since it started. */
export interface AmqpStats {
  /** Published and acknowledged. */
  acked: number
  /** Acknowledged without publishing: their `messageId` had published already. */
  replayed: number
  /** Rejected without requeue (dead-lettered when configured). */
  rejected: number
  /** Returned to the queue after a passing failure, or at close. */
  requeued: number
}

/** `app.notifyAmqp`: the consumer's state, for `/health`, and the connection it runs on. */
export interface NotifyAmqp {
  /** The connection, e.g. to publish on (`createPublisher`); closed by the plugin on app close. */
  readonly connection: Connection
  readonly exchange: string
  readonly queue: string
  readonly stats: Readonly<AmqpStats>
  health (): { state: AmqpState, queue: string }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The RabbitMQ ingress (see `NotifyAmqp`). */
    notifyAmqp: NotifyAmqp
  }
}

const NAME = /^[A-Za-z0-9_.:-]{1,255}$/

function name (option: string, value: unknown, fallback?: string): string | undefined {
  if (value === undefined) return fallback
  if (typeof value !== 'string' || !NAME.test(value)) throw new InvalidOptionError(`${option} must match ${NAME}`)
  return value
}

async function fastifyNotifyAmqp (app: FastifyInstance, opts: NotifyAmqpOptions): Promise<void> {
  const url = opts.url ?? 'amqp://guest:guest@127.0.0.1:5672'
  if (typeof url !== 'string' && (url === null || typeof url !== 'object')) throw new InvalidOptionError('url must be an amqp:// URL or connection options')
  const exchange = name('exchange', opts.exchange, 'notifications') as string
  const queue = name('queue', opts.queue, 'notify-edge') as string
  const deadLetterExchange = name('deadLetterExchange', opts.deadLetterExchange)
  const deadLetterQueue = name('deadLetterQueue', opts.deadLetterQueue)
  if (deadLetterQueue !== undefined && deadLetterExchange === undefined) throw new InvalidOptionError('deadLetterQueue needs deadLetterExchange')
  const singleActiveConsumer = opts.singleActiveConsumer ?? false
  if (typeof singleActiveConsumer !== 'boolean') throw new InvalidOptionError('singleActiveConsumer must be a boolean')
  const prefetch = positiveInteger('prefetch', opts.prefetch, 100)
  const maxBodyBytes = positiveInteger('maxBodyBytes', opts.maxBodyBytes, 65536)
  const retryDelay = positiveInteger('retryDelay', opts.retryDelay, 1000)
  const closeTimeout = positiveInteger('closeTimeout', opts.closeTimeout, 5000)
  await ensureIdempotency(app)
  // Loaded here, not at import: an app that never consumes RabbitMQ does not pay for the client.
  const { Connection, ConsumerStatus } = await import('rabbitmq-client')

  const log = app.log.child({ ingress: 'amqp', queue })
  const stats: AmqpStats = { acked: 0, replayed: 0, rejected: 0, requeued: 0 }
  const counters = amqpMetrics(app, () => state === 'consuming' && connection.ready)
  let state: AmqpState = 'connecting'
  let failing = false
  const waits = new Set<() => void>()

  const connection = new Connection(typeof url === 'string' ? { url, connectionName: 'notify-edge' } : { connectionName: 'notify-edge', ...url })
  connection.on('error', (err) => {
    if (state === 'consuming') state = 'reconnecting'
    log.warn({ err }, 'notify edge: RabbitMQ connection failed; consuming resumes once it is back')
  })

  function reject (msg: AsyncMessage, reason: RejectReason, message: string): ConsumerStatus {
    stats.rejected++
    counters?.outcomes.inc({ outcome: 'rejected' })
    counters?.rejected.inc({ reason })
    log.warn({ reason, routingKey: msg.routingKey.slice(0, 255), messageId: msg.messageId?.slice(0, 128), redelivered: msg.redelivered },
      `notify edge: AMQP message rejected: ${message}`)
    return ConsumerStatus.DROP
  }

  /** Waits `retryDelay` before a requeue, so a broken bus is not hammered; cut short by close. */
  async function requeue (err: unknown): Promise<ConsumerStatus> {
    if (!failing) log.warn({ err }, 'notify edge: AMQP message not published; requeued until the edge can publish again')
    failing = true
    if (state !== 'closed') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, retryDelay)
        function done (): void { clearTimeout(timer); waits.delete(done); resolve() }
        waits.add(done)
      })
    }
    stats.requeued++
    counters?.outcomes.inc({ outcome: 'requeued' })
    return ConsumerStatus.REQUEUE
  }

  async function handle (msg: AsyncMessage): Promise<ConsumerStatus> {
    let input, idempotencyKey
    try {
      ({ input, idempotencyKey } = delivery(msg, maxBodyBytes))
    } catch (err) {
      if (err instanceof Rejection) return reject(msg, err.reason, err.message)
      throw err
    }
    try {
      const { replayed } = await ingressTrace(app.notifyTracer, msg.headers?.traceparent, () =>
        app.notifyIdempotency.publish(idempotencyKey, input))
      failing = false
      stats[replayed ? 'replayed' : 'acked']++
      counters?.outcomes.inc({ outcome: replayed ? 'replayed' : 'acked' })
      return ConsumerStatus.ACK
    } catch (err) {
      const reason = rejectReason(err)
      return reason === null ? await requeue(err) : reject(msg, reason, (err as Error).message)
    }
  }

  const consumer: Consumer = connection.createConsumer({
    queue,
    queueOptions: {
      durable: true,
      arguments: {
        ...(deadLetterExchange === undefined ? {} : { 'x-dead-letter-exchange': deadLetterExchange }),
        ...(singleActiveConsumer ? { 'x-single-active-consumer': true } : {})
      }
    },
    exchanges: [{ exchange, type: 'topic', durable: true }],
    // Everything sent to the exchange: a malformed key still reaches the edge, to be counted and dead-lettered.
    queueBindings: [{ queue, exchange, routingKey: '#' }],
    qos: { prefetchCount: prefetch },
    concurrency: prefetch,
    lazy: true
  }, handle)
  consumer.on('ready', () => {
    if (state !== 'consuming') log.info({ exchange }, 'notify edge: consuming from RabbitMQ')
    if (state !== 'closed') state = 'consuming'
  })
  consumer.on('error', (err) => {
    if (state === 'consuming') state = 'reconnecting'
    log.warn({ err }, 'notify edge: RabbitMQ consumer failed; it retries with backoff')
  })

  if (deadLetterExchange === undefined) {
    consumer.start()
  } else {
    // Declared on every (re)connection: a broker that lost its definitions gets them back.
    const declareDeadLetters = async (): Promise<void> => {
      await connection.exchangeDeclare({ exchange: deadLetterExchange, type: 'topic', durable: true })
      if (deadLetterQueue === undefined) return
      await connection.queueDeclare({ queue: deadLetterQueue, durable: true })
      await connection.queueBind({ queue: deadLetterQueue, exchange: deadLetterExchange, routingKey: '#' })
    }
    const onConnection = (): void => {
      declareDeadLetters()
        .catch((err: unknown) => log.warn({ err }, 'notify edge: dead-letter exchange or queue not declared'))
        .finally(() => { if (state === 'connecting') consumer.start() })
    }
    connection.on('connection', onConnection)
    app.addHook('onClose', async () => { connection.off('connection', onConnection) })
  }

  app.decorate('notifyAmqp', {
    connection,
    exchange,
    queue,
    stats,
    health: () => ({ state: state === 'consuming' && !connection.ready ? 'reconnecting' : state, queue })
  })

  app.addHook('onClose', async () => {
    state = 'closed'
    // Messages waiting to be requeued go back at once; the ones being published finish.
    for (const done of waits) done()
    const closing = consumer.close()
    // Without a connection nothing can be acked, and closing would wait for one to come.
    if (!connection.ready) return connection.unsafeDestroy()
    if (await within(closeTimeout, closing) === null) log.warn('notify edge: AMQP consumer did not stop in time')
    if (await within(closeTimeout, connection.close()) === null) connection.unsafeDestroy()
  })
}

function amqpMetrics (app: FastifyInstance, up: () => boolean): { outcomes: Counter, rejected: Counter } | null {
  if (!app.hasDecorator('notifyMetrics')) return null
  const { registry, prefix } = app.notifyMetrics
  const registers = [registry]
  // eslint-disable-next-line no-new
  new Gauge({ name: `${prefix}amqp_consuming`, help: '1 while the RabbitMQ consumer is connected and consuming', registers, collect () { this.set(up() ? 1 : 0) } })
  return {
    outcomes: new Counter({ name: `${prefix}amqp_messages_total`, help: 'AMQP deliveries by outcome: acked, replayed (idempotent duplicate), rejected, requeued', labelNames: ['outcome'], registers }),
    rejected: new Counter({ name: `${prefix}amqp_rejected_total`, help: 'AMQP deliveries rejected without requeue, by reason', labelNames: ['reason'], registers })
  }
}

export const notifyAmqp = fp(fastifyNotifyAmqp, {
  fastify: '5.x',
  name: 'notify-edge-amqp',
  dependencies: ['notify-edge-notify']
})
export default notifyAmqp
