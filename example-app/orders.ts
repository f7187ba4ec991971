import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Publisher } from '../plugins/index.js'
import type { STREAMS } from './app.js'

interface Order { orderId: string, status: string }

/** Where the order service keeps each user's orders: what a page refetches after a `gap`. */
interface OrderBook {
  set (user: string, order: Order): Promise<void>
  list (user: string): Promise<Order[]>
}

const KEEP_PER_USER = 50
const KEEP_SECONDS = 86400

/** In this process: one instance only. */
function memoryBook (): OrderBook {
  const users = new Map<string, Map<string, string>>()
  return {
    async set (user, { orderId, status }) {
      let orders = users.get(user)
      if (orders === undefined) users.set(user, orders = new Map())
      orders.set(orderId, status)
      if (orders.size > KEEP_PER_USER) orders.delete(orders.keys().next().value!)
    },
    async list (user) {
      return [...users.get(user) ?? []].map(([orderId, status]) => ({ orderId, status }))
    }
  }
}

/** In Redis, so every instance answers for orders any of them took. */
function redisBook (redis: FastifyInstance['redis']): OrderBook {
  const key = (user: string): string => `notify:demo:orders:${user}`
  return {
    async set (user, { orderId, status }) {
      await redis.multi().hset(key(user), orderId, status).expire(key(user), KEEP_SECONDS).exec()
    },
    async list (user) {
      return Object.entries(await redis.hgetall(key(user))).map(([orderId, status]) => ({ orderId, status }))
    }
  }
}

/**
 * The demo order service: each order publishes placed → paid → shipped to its user's `order`
 * stream, and `GET /orders` (the user's JWT as Bearer) answers their current state.
 */
export async function orderRoutes (app: FastifyInstance, opts: { stepMs: number }): Promise<void> {
  // Typed by the declaration: a misspelt stream or a data shape the schema refuses does not compile.
  const notify: Publisher<typeof STREAMS> = app.notify
  const book = app.hasDecorator('redis') ? redisBook(app.redis) : memoryBook()
  const pending = new Set<NodeJS.Timeout>()
  app.addHook('onClose', async () => {
    for (const timer of pending) clearTimeout(timer)
    pending.clear()
  })

  function later (ms: number, fn: () => Promise<unknown>): void {
    const timer = setTimeout(() => {
      pending.delete(timer)
      fn().catch((err: unknown) => app.log.warn({ err }, 'order update not published'))
    }, ms)
    pending.add(timer)
  }

  app.post('/orders', {
    schema: {
      body: {
        type: 'object',
        required: ['user'],
        additionalProperties: false,
        properties: { user: { type: 'string', minLength: 1, maxLength: 256 } }
      }
    }
  }, async (request, reply) => {
    const { user } = request.body as { user: string }
    const orderId = randomUUID()
    const update = (status: string) => async () => {
      await book.set(user, { orderId, status })
      return notify.publish({ stream: 'order', user, data: { orderId, status } })
    }
    // `online`: whether the user saw it live; false means the onOffline fallback fired.
    const placed = await update('placed')()
    later(opts.stepMs, update('paid'))
    later(opts.stepMs * 2, update('shipped'))
    return reply.code(202).send({ orderId, online: placed.online })
  })

  app.get('/orders', async (request, reply) => {
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
