import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { apiKeyMatcher } from './api-key.js'
import { BadApiKeyError, BadPresenceQueryError, InvalidOptionError, PayloadTooLargeError } from './errors.js'
import { ensureIdempotency } from './idempotency/index.js'
import { JSON_MAX_DEPTH, parseJsonPayload } from './json-payload.js'
import type { PresenceQuery, PublishInput } from './publishing.js'
import { errorSchema, presenceSchema, publishBodySchema, publishResultSchema } from './schemas.js'
import { positiveInteger } from './util.js'
import { ingressTrace } from './tracing.js'

export interface NotifyPublishApiOptions {
  /** Key (or keys, while rotating) that callers send in `x-api-key`. Required. */
  apiKey: string | string[]
  /** Route. @default '/notifications' */
  path?: string
  /** Largest body, in bytes; over it the answer is 413. @default 65536 */
  bodyLimit?: number
  /**
   * Route of `GET /presence?user=…&user=…` and `GET /presence?stream=<public stream>` (same key);
   * registered only when the presence plugin is. @default '/presence'
   */
  presencePath?: string
}

/** `?user=a&user=b` or `?stream=s` as `app.notify.presence()` takes it. */
function presenceQuery (query: Record<string, unknown>): PresenceQuery {
  const { user, stream, key, ...rest } = query
  const extra = Object.keys(rest)
  if (extra.length > 0) throw new BadPresenceQueryError(`unexpected parameter ${extra[0].slice(0, 64)}`)
  if (user !== undefined && stream !== undefined) throw new BadPresenceQueryError('give user or stream, not both')
  if (user !== undefined) return { users: Array.isArray(user) ? user : [user], ...(key === undefined ? {} : { key }) } as PresenceQuery
  if (Array.isArray(stream) || Array.isArray(key)) throw new BadPresenceQueryError('give one stream (and one key)')
  if (stream === undefined) throw new BadPresenceQueryError('give user or stream')
  return key === undefined ? { stream: stream as string } : { stream: stream as string, key: key as string }
}

async function fastifyNotifyPublishApi (app: FastifyInstance, opts: NotifyPublishApiOptions): Promise<void> {
  const keyMatches = apiKeyMatcher(opts.apiKey)
  const path = opts.path ?? '/notifications'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const bodyLimit = positiveInteger('bodyLimit', opts.bodyLimit, 65536)
  await ensureIdempotency(app)

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

  // The publish route parses JSON under the rule every ingress shares, in a context of its own so
  // the host app's parser stays as it is. The body wraps `data` in one more level.
  await app.register(async function publishRoute (scope) {
    scope.removeContentTypeParser('application/json')
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
      try {
        done(null, parseJsonPayload(body as Buffer, { maxBytes: bodyLimit, maxDepth: JSON_MAX_DEPTH + 1 }))
      } catch (err) {
        done(err as Error, undefined)
      }
    })
    scope.post(path, {
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
        // Fastify's own error for it carries no FST_NOTIFY_ code; ours does.
        reply.send(error.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? new PayloadTooLargeError(bodyLimit) : error)
      }
    }, async (request, reply) => {
      // Node types every header loosely; the key check refuses anything but 1 to 128 printable characters.
      const key = request.headers['idempotency-key'] as string | undefined
      // A producer's W3C traceparent header continues its trace (docs/observability.md).
      const { result, replayed } = await ingressTrace(app.notifyTracer, request.headers.traceparent, () =>
        app.notifyIdempotency.publish(key, request.body as PublishInput))
      if (replayed) reply.header('idempotent-replayed', 'true')
      return reply.code(202).send(result)
    })
  })
}

export const notifyPublishApi = fp(fastifyNotifyPublishApi, {
  fastify: '5.x',
  name: 'notify-edge-publish-api',
  dependencies: ['notify-edge-notify']
})
export default notifyPublishApi
