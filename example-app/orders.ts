import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'

/** The demo order service: each order publishes placed → paid → shipped to its user's `order` stream. */
export async function orderRoutes (app: FastifyInstance, opts: { stepMs: number }): Promise<void> {
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
    const update = (status: string) => () => app.notify.publish({ stream: 'order', user, data: { orderId, status } })
    // `online`: whether the user saw it live; false means the onOffline fallback fired.
    const placed = await update('placed')() as { online?: boolean }
    later(opts.stepMs, update('paid'))
    later(opts.stepMs * 2, update('shipped'))
    return reply.code(202).send({ orderId, online: placed.online })
  })
}
