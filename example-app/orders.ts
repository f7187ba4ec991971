import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { routingKey, type PublishInput } from '../plugins/index.js'

/**
 * The demo order service: each order publishes placed → paid → shipped to its user's `order`
 * stream. With `amqp`, it publishes as a separate order service would, to the RabbitMQ exchange
 * (with a `messageId`, so a retried send is shown once), and the edge consumes it from there.
 */
export async function orderRoutes (app: FastifyInstance, opts: { stepMs: number, amqp: boolean }): Promise<void> {
  const pending = new Set<NodeJS.Timeout>()
  const publisher = opts.amqp
    ? app.notifyAmqp.connection.createPublisher({ confirm: true, maxAttempts: 3, exchanges: [{ exchange: app.notifyAmqp.exchange, type: 'topic', durable: true }] })
    : null
  app.addHook('onClose', async () => {
    for (const timer of pending) clearTimeout(timer)
    pending.clear()
    await publisher?.close()
  })

  async function send (user: string, orderId: string, status: string): Promise<void> {
    const data = { orderId, status }
    if (publisher === null) {
      await app.notify.publish({ stream: 'order', user, data } satisfies PublishInput)
      return
    }
    await publisher.send({
      exchange: app.notifyAmqp.exchange,
      routingKey: routingKey({ stream: 'order', user }),
      messageId: `${orderId}:${status}`,
      durable: true
    }, data)
  }

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
    await send(user, orderId, 'placed')
    later(opts.stepMs, () => send(user, orderId, 'paid'))
    later(opts.stepMs * 2, () => send(user, orderId, 'shipped'))
    return reply.code(202).send({ orderId })
  })
}
