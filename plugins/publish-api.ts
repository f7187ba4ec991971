import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance } from 'fastify'
import { apiKeyMatcher } from './api-key.js'
import { BadApiKeyError, InvalidOptionError, PayloadTooLargeError } from './errors.js'
import { ensureIdempotency } from './idempotency/index.js'
import type { PublishInput } from './notify.js'
import { positiveInteger } from './util.js'

export interface NotifyPublishApiOptions {
  /** Key (or keys, while rotating) that callers send in `x-api-key`. Required. */
  apiKey: string | string[]
  /** Route. @default '/notifications' */
  path?: string
  /** Largest body, in bytes; over it the answer is 413. @default 65536 */
  bodyLimit?: number
}

async function fastifyNotifyPublishApi (app: FastifyInstance, opts: NotifyPublishApiOptions): Promise<void> {
  const keyMatches = apiKeyMatcher(opts.apiKey)
  const path = opts.path ?? '/notifications'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const bodyLimit = positiveInteger('bodyLimit', opts.bodyLimit, 65536)
  await ensureIdempotency(app)

  app.post(path, {
    bodyLimit,
    onRequest: async (request) => {
      if (!keyMatches(request.headers['x-api-key'])) throw new BadApiKeyError()
    },
    errorHandler: (error: FastifyError, _request, reply) => {
      // Fastify's own error for it carries no FST_NOTIFY_ code; ours does.
      reply.send(error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? new PayloadTooLargeError(bodyLimit) : error)
    }
  }, async (request, reply) => {
    // Node types every header loosely; the key check refuses anything but 1 to 128 printable characters.
    const key = request.headers['idempotency-key'] as string | undefined
    const { result, replayed } = await app.notifyIdempotency.publish(key, request.body as PublishInput)
    if (replayed) reply.header('idempotent-replayed', 'true')
    return reply.code(202).send(result)
  })
}

export const notifyPublishApi = fp(fastifyNotifyPublishApi, {
  fastify: '5.x',
  name: 'notify-edge-publish-api',
  dependencies: ['notify-edge-notify']
})
export default notifyPublishApi
