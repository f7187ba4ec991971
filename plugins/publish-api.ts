import { createHash, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { BadApiKeyError, BadPresenceQueryError, InvalidOptionError, PayloadTooLargeError } from './errors.js'
import type { PresenceQuery, PublishInput } from './publishing.js'
import { errorSchema, presenceSchema, publishBodySchema, publishResultSchema } from './schemas.js'
import { positiveInteger } from './util.js'

export interface NotifyPublishApiOptions {
  /** Key (or keys, while rotating) that callers send in `x-api-key`. Required. */
  apiKey: string | string[]
  /** Route. @default '/notifications' */
  path?: string
  /** Largest body, in bytes; over it the answer is 400. @default 65536 */
  bodyLimit?: number
  /**
   * Route of `GET /presence?user=…&user=…` and `GET /presence?stream=<public stream>` (same key);
   * registered only when the presence plugin is. @default '/presence'
   */
  presencePath?: string
}

/** `?user=a&user=b` or `?stream=s` as `app.notify.presence()` takes it. */
function presenceQuery (query: Record<string, unknown>): PresenceQuery {
  const { user, stream, ...rest } = query
  const extra = Object.keys(rest)
  if (extra.length > 0) throw new BadPresenceQueryError(`unexpected parameter ${extra[0].slice(0, 64)}`)
  if (user !== undefined && stream !== undefined) throw new BadPresenceQueryError('give user or stream, not both')
  if (user !== undefined) return { users: Array.isArray(user) ? user : [user] }
  if (Array.isArray(stream)) throw new BadPresenceQueryError('give one stream')
  if (stream === undefined) throw new BadPresenceQueryError('give user or stream')
  return { stream: stream as string }
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

  const authenticate = async (request: FastifyRequest): Promise<void> => {
    if (!keyMatches(request.headers['x-api-key'])) throw new BadApiKeyError()
  }
  // The request schemas document (for @fastify/swagger): app.notify validates, with the coded
  // errors of the contract. The response schemas serialize, so they list every field answered.
  const documentOnly = { validatorCompiler: () => (value: unknown) => ({ value }) }

  if (app.hasDecorator('notifyPresence')) {
    const presencePath = opts.presencePath ?? '/presence'
    if (typeof presencePath !== 'string' || !presencePath.startsWith('/')) throw new InvalidOptionError('presencePath must start with /')
    app.get(presencePath, {
      ...documentOnly,
      schema: presenceSchema as FastifySchema,
      onRequest: authenticate
    }, async (request) =>
      app.notify.presence(presenceQuery(request.query as Record<string, unknown>)))
  }

  app.post(path, {
    bodyLimit,
    ...documentOnly,
    schema: {
      summary: 'Publish a notification',
      tags: ['notify-edge'],
      security: [{ notifyApiKey: [] }],
      body: publishBodySchema(app.notify.streams.values()),
      response: { 202: publishResultSchema, 400: errorSchema, 401: errorSchema, 503: errorSchema }
    } as FastifySchema,
    onRequest: authenticate,
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
