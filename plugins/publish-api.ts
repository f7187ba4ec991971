import { createHash, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifySchema } from 'fastify'
import { BadApiKeyError, InvalidOptionError, PayloadTooLargeError } from './errors.js'
import type { PublishInput } from './typed.js'
import { errorSchema, publishBodySchema, publishResultSchema } from './schemas.js'
import { positiveInteger } from './util.js'

export interface NotifyPublishApiOptions {
  /** Key (or keys, while rotating) that callers send in `x-api-key`. Required. */
  apiKey: string | string[]
  /** Route. @default '/notifications' */
  path?: string
  /** Largest body, in bytes; over it the answer is 400. @default 65536 */
  bodyLimit?: number
}

const MIN_KEY_LENGTH = 16

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

async function fastifyNotifyPublishApi (app: FastifyInstance, opts: NotifyPublishApiOptions): Promise<void> {
  const keys = Array.isArray(opts.apiKey) ? opts.apiKey : [opts.apiKey]
  if (keys.length === 0 || !keys.every((key) => typeof key === 'string' && key.length >= MIN_KEY_LENGTH)) {
    throw new InvalidOptionError(`apiKey must be a string of at least ${MIN_KEY_LENGTH} characters, or an array of them`)
  }
  const path = opts.path ?? '/notifications'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const bodyLimit = positiveInteger('bodyLimit', opts.bodyLimit, 65536)
  // Comparing fixed-length digests keeps the compare constant-time whatever the key's length.
  const digests = keys.map(digest)

  function keyMatches (given: unknown): boolean {
    if (typeof given !== 'string') return false
    const candidate = digest(given)
    let match = false
    for (const key of digests) match = timingSafeEqual(candidate, key) || match
    return match
  }

  // For @fastify/swagger: the body per declared stream, the answers, the key (security scheme `notifyApiKey`).
  const schema = {
    summary: 'Publish a notification',
    tags: ['notify-edge'],
    security: [{ notifyApiKey: [] }],
    body: publishBodySchema(app.notify.streams.values()),
    response: { 202: publishResultSchema, 400: errorSchema, 401: errorSchema, 503: errorSchema }
  }
  app.post(path, {
    bodyLimit,
    schema: schema as FastifySchema,
    // The schema documents; app.notify.publish validates, with the coded errors of the contract,
    // and the answer goes out whole (fields a later version adds are not filtered out).
    validatorCompiler: () => (body) => ({ value: body }),
    serializerCompiler: () => (data) => JSON.stringify(data),
    onRequest: async (request) => {
      if (!keyMatches(request.headers['x-api-key'])) throw new BadApiKeyError()
    },
    errorHandler: (error: FastifyError, _request, reply) => {
      // The contract answers every bad body with 400, an oversized one included.
      reply.send(error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? new PayloadTooLargeError(bodyLimit) : error)
    }
  }, async (request, reply) => {
    const result = await app.notify.publish(request.body as PublishInput)
    return reply.code(202).send(result)
  })
}

export const notifyPublishApi = fp(fastifyNotifyPublishApi, {
  fastify: '5.x',
  name: 'notify-edge-publish-api',
  dependencies: ['notify-edge-notify']
})
export default notifyPublishApi
