import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { BusUnavailableError, natsSubject, routingKey, type PublishInput, type PublishResult } from '../plugins/index.js'
import { postgresOrderBook } from './orders-pg.js'
// `request.notifyPrincipal`: the socket auth (embedded) or notifyBackend (split out) declares it.
import type {} from '../plugins/socket-auth.js'

interface Order { orderId: string, status: string }

/** Where the order service keeps each user's orders: what a page refetches after a `gap`. */
interface OrderBook {
  set (user: string, order: Order): Promise<void>
  list (user: string): Promise<Order[]>
  /** Who placed the order, or null: what the `order-status` channel's authorize asks. */
  owner (orderId: string): Promise<string | null>
}

/** The `order-status` channel's owner lookup, answered by the order book once orderRoutes built it. */
export class OrderOwners {
  #book: OrderBook | null = null
  readonly lookup = async (orderId: string): Promise<string | null> => this.#book === null ? null : this.#book.owner(orderId)

  attach (book: OrderBook): void {
    this.#book = book
  }
}

const KEEP_PER_USER = 50
const KEEP_SECONDS = 86400

/** In this process: one instance only. */
function memoryBook (): OrderBook {
  const users = new Map<string, Map<string, string>>()
  const owners = new Map<string, string>()
  return {
    async set (user, { orderId, status }) {
      owners.set(orderId, user)
      if (owners.size > KEEP_PER_USER * 1000) owners.delete(owners.keys().next().value!)
      let orders = users.get(user)
      if (orders === undefined) users.set(user, orders = new Map())
      orders.set(orderId, status)
      if (orders.size > KEEP_PER_USER) orders.delete(orders.keys().next().value!)
    },
    async list (user) {
      return [...users.get(user) ?? []].map(([orderId, status]) => ({ orderId, status }))
    },
    async owner (orderId) {
      return owners.get(orderId) ?? null
    }
  }
}

/** In Redis, so every instance answers for orders any of them took. */
function redisBook (redis: FastifyInstance['redis']): OrderBook {
  const key = (user: string): string => `notify:demo:orders:${user}`
  return {
    async set (user, { orderId, status }) {
      // Two transactions, not one: on Redis Cluster the owner's key may sit in another slot.
      await Promise.all([
        redis.multi().hset(key(user), orderId, status).expire(key(user), KEEP_SECONDS).exec(),
        redis.set(`notify:demo:order-owner:${orderId}`, user, 'EX', KEEP_SECONDS)
      ])
    },
    async list (user) {
      return Object.entries(await redis.hgetall(key(user))).map(([orderId, status]) => ({ orderId, status }))
    },
    async owner (orderId) {
      return redis.get(`notify:demo:order-owner:${orderId}`)
    }
  }
}

/**
 * The demo order service: each order publishes placed → paid → shipped to its user's `order`
 * stream and to the order's own channel key `order-status:<orderId>` (its owner and support staff
 * follow it), and `GET /orders` (the user's JWT as Bearer) answers their current state. With `amqp`,
 * it publishes as a separate order service would, to the RabbitMQ exchange (with a `messageId`, so
 * a retried send is shown once), and the edge consumes it from there.
 */
export interface OrderRoutesOptions {
  stepMs: number
  /** Publish through the RabbitMQ exchange the edge consumes. */
  amqp?: boolean
  /** Store orders in PostgreSQL, each with its notification in the outbox (the edge's relay publishes them). */
  outbox?: { databaseUrl: string, table: string }
  /** Publish through the JetStream stream the edge consumes. */
  jetstream?: boolean
  /** Who owns which order, for the `order-status` channel's authorization. */
  owners?: OrderOwners
}

export async function orderRoutes (app: FastifyInstance, opts: OrderRoutesOptions): Promise<void> {
  const outbox = opts.outbox === undefined ? null : await postgresOrderBook(opts.outbox.databaseUrl, opts.outbox.table)
  if (outbox !== null) app.addHook('onClose', () => outbox.close())
  const book = outbox ?? (app.hasDecorator('redis') ? redisBook(app.redis) : memoryBook())
  opts.owners?.attach(book)
  const pending = new Set<NodeJS.Timeout>()
  const publisher = opts.amqp === true
    ? app.notifyAmqp.connection.createPublisher({ confirm: true, maxAttempts: 3, exchanges: [{ exchange: app.notifyAmqp.exchange, type: 'topic', durable: true }] })
    : null
  app.addHook('onClose', async () => {
    for (const timer of pending) clearTimeout(timer)
    pending.clear()
    await publisher?.close()
  })

  /** The publish's answer in-process; through the outbox, RabbitMQ or JetStream the edge publishes later, and no answer comes back. */
  async function send (user: string, orderId: string, status: string): Promise<PublishResult | Record<string, never>> {
    const data = { orderId, status }
    // The outbox row was written with the order, in its transaction.
    if (outbox !== null) return {}
    if (opts.jetstream === true) {
      const nats = app.notifyJetStream.connection()
      if (nats === null) throw new BusUnavailableError('NATS is not connected yet')
      const { jetstream } = await import('@nats-io/jetstream')
      await jetstream(nats).publish(natsSubject({ stream: 'order', user }, app.notifyJetStream.subjectPrefix), JSON.stringify(data), { msgID: `${orderId}:${status}` })
      return {}
    }
    if (publisher === null) {
      const [toUser] = await Promise.all([
        app.notify.publish({ stream: 'order', user, data } satisfies PublishInput),
        app.notify.publish({ stream: 'order-status', key: orderId, data } satisfies PublishInput)
      ])
      return toUser
    }
    const message = { exchange: app.notifyAmqp.exchange, durable: true }
    await Promise.all([
      publisher.send({ ...message, routingKey: routingKey({ stream: 'order', user }), messageId: `${orderId}:${status}` }, data),
      publisher.send({ ...message, routingKey: routingKey({ stream: 'order-status', key: orderId }), messageId: `${orderId}:${status}:channel` }, data)
    ])
    return {}
  }

  function later (ms: number, fn: () => Promise<unknown>): void {
    const timer = setTimeout(() => {
      pending.delete(timer)
      fn().catch((err: unknown) => app.log.warn({ err }, 'order update not published'))
    }, ms)
    pending.add(timer)
  }

  // Over RPC (SPEC section 13) the caller is `request.notifyPrincipal` and orders for themselves;
  // over plain HTTP the demo takes `user` from the body (no auth: a demo).
  app.post('/orders', {
    schema: {
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { user: { type: 'string', minLength: 1, maxLength: 256 } }
      }
    }
  }, async (request, reply) => {
    const user = request.notifyPrincipal?.user ?? (request.body as { user?: string } | undefined)?.user
    if (user == null) return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: 'body must have required property \'user\'' })
    const orderId = randomUUID()
    const update = (status: string) => async () => {
      await book.set(user, { orderId, status })
      return send(user, orderId, status)
    }
    // `online`: whether the user saw it live; false means the onOffline fallback fired.
    const placed = await update('placed')() as { online?: boolean }
    later(opts.stepMs, update('paid'))
    later(opts.stepMs * 2, update('shipped'))
    return reply.code(202).send({ orderId, online: placed.online })
  })

  app.get('/orders', async (request, reply) => {
    const caller = request.notifyPrincipal?.user
    if (caller != null) return { orders: await book.list(caller) }
    const header = request.headers.authorization ?? ''
    let user: string
    try {
      // A promise when the key comes from a JWKS (the split example), the claims otherwise.
      user = (await (app.jwt.verify<{ sub: string }>(header.replace(/^Bearer /, '')) as { sub: string } | Promise<{ sub: string }>)).sub
    } catch {
      return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'a valid Bearer JWT is required' })
    }
    return { orders: await book.list(user) }
  })
}
