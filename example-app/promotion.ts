import type { FastifyInstance } from 'fastify'

/** `POST /demo/promotion`: the page holds no API key; this lets it show a public stream at work. */
export async function promotionRoute (app: FastifyInstance): Promise<void> {
  let promotions = 0
  app.post('/demo/promotion', async (_request, reply) =>
    reply.code(202).send(await app.notify.publish({ stream: 'promotional', data: { text: `Promotion #${++promotions}: 10% off today` } })))
}
