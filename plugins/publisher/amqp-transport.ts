import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { ConnectionOptions } from 'rabbitmq-client'
import { routingKey } from '../amqp/routing-key.js'
import { BusUnavailableError, InvalidKeyError, InvalidOptionError, InvalidUserError } from '../errors.js'
import { noPresence, type Deliver, type Sent } from '../publishing.js'
import { within } from '../util.js'
import type { PublisherTransport } from './transport.js'

/** Publishing to the edges' RabbitMQ topic exchange, which they consume (SPEC section 9). */
export interface NotifyPublisherAmqpOptions {
  /** The broker: an `amqp://` URL, or rabbitmq-client connection options (TLS, several hosts, backoff). */
  url: string | ConnectionOptions
  /** The durable topic exchange the edges consume (their `amqp.exchange`). @default 'notifications' */
  exchange?: string
}

const EXCHANGE = /^[A-Za-z0-9_.:-]{1,255}$/

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * Publishes each recipient's message to the exchange, routed as the edge's consumer parses it, with
 * a fresh `messageId` (the edge's idempotency key, so a redelivery is shown once), and resolves
 * once the broker has confirmed it. No answer comes back from the edge: ids are assigned when an
 * edge consumes, so `id`s are these `messageId`s, and who was online is unknown.
 */
export async function amqpTransport (opts: NotifyPublisherAmqpOptions, timeout: number, log: FastifyBaseLogger): Promise<PublisherTransport> {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError('amqp must be { url, exchange? }')
  const { url, exchange = 'notifications' } = opts
  if (typeof url !== 'string' && (url === null || typeof url !== 'object')) throw new InvalidOptionError('amqp.url must be an amqp:// URL or connection options')
  if (typeof exchange !== 'string' || !EXCHANGE.test(exchange)) throw new InvalidOptionError(`amqp.exchange must match ${EXCHANGE}`)
  // Loaded here, not at import: a publisher over Redis, HTTP or gRPC does not pay for the client.
  const { Connection } = await import('rabbitmq-client')
  // rabbitmq-client holds a send while it reconnects; acquireTimeout drops it at `timeout`, so a
  // publish answered 503 is not sent later behind the caller's back.
  const connection = new Connection({ connectionName: 'notify-publisher', ...(typeof url === 'string' ? { url } : url), acquireTimeout: timeout })
  let down = false
  connection.on('error', (err) => {
    if (!down) log.warn({ err }, 'notify publisher: RabbitMQ connection failed; publishes answer 503 until it is back')
    down = true
  })
  connection.on('connection', () => { down = false })
  // Declared as the edge declares it, so a publisher may start first; `mandatory` tells when no queue is bound.
  const publisher = connection.createPublisher({ confirm: true, exchanges: [{ exchange, type: 'topic', durable: true }] })
  const returned = new Set<string>()
  publisher.on('basic.return', (msg) => { if (msg.messageId !== undefined) returned.add(msg.messageId) })

  async function send (routing: string, body: Buffer): Promise<Sent> {
    const messageId = randomUUID()
    const confirmed = publisher.send({ exchange, routingKey: routing, messageId, durable: true, mandatory: true, contentType: 'application/json' }, body)
      .then(async () => {
        // The broker sends basic.return before the ack, and rabbitmq-client emits it a turn later.
        await nextTurn()
        if (returned.delete(messageId)) throw new BusUnavailableError(`no queue is bound to exchange ${exchange}: is an edge consuming it?`)
        return { id: messageId, receivers: null }
      }, (err: Error) => { throw new BusUnavailableError(`RabbitMQ: ${err.message}`) })
    const done = await within(timeout, confirmed)
    if (done === null) throw new BusUnavailableError(`RabbitMQ did not confirm within ${timeout} ms`)
    return done.value
  }

  const deliver: Deliver = async ({ stream, users, keys: channelKeys, input }) => {
    // Every key first: a publish that cannot be routed sends nothing.
    const keys = channelKeys === null
      ? users.map((user) => {
        try {
          return routingKey(user === null ? { stream: stream.name } : { stream: stream.name, user })
        } catch {
          throw new InvalidUserError(`${String(user).slice(0, 64)}… is over an AMQP routing key's 255 bytes, percent-encoded`)
        }
      })
      : channelKeys.map((key) => {
        try {
          return routingKey({ stream: stream.name, key })
        } catch {
          throw new InvalidKeyError(`${key.slice(0, 64)}… is over an AMQP routing key's 255 bytes, percent-encoded`)
        }
      })
    const body = Buffer.from(JSON.stringify(input.data))
    return Promise.all(keys.map((key) => send(key, body)))
  }

  return {
    deliver,
    presence: noPresence('AMQP carries no answer back: ask an edge\'s GET /presence'),
    async ready () {},
    async close () {
      if (connection.ready && await within(timeout, publisher.close().then(() => connection.close())) !== null) return
      connection.unsafeDestroy()
    }
  }
}
