import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Publisher } from '../plugins/index.js'
import type { STREAMS } from './app.js'

/** The demo order service: each order publishes placed → paid → shipped to its user's `order` stream. */
export async function orderRoutes (app: FastifyInstance, opts: { stepMs: number }): Promise<void> {
  // Typed by the declaration: a misspelt stream or a data shape the schema refuses does not compile.
  const notify: Publisher<typeof STREAMS> = app.notify
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
    const update = (status: string) => () => notify.publish({ stream: 'order', user, data: { orderId, status } })
    await update('placed')()
    later(opts.stepMs, update('paid'))
    later(opts.stepMs * 2, update('shipped'))
    return reply.code(202).send({ orderId })
  })
}
