import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { apiKeyMatcher } from './api-key.js'
import { CONTROL_ACTIONS } from './control-commands.js'
import { BadAdminKeyError, InvalidOptionError } from './errors.js'
import { errorSchema } from './schemas.js'

export interface NotifyAdminApiOptions {
  /**
   * Key (or keys, while rotating) that operators send in `x-api-key`: at least 16 characters, and
   * never a publish key. Required.
   */
  apiKey: string | string[]
  /** The publish API's key(s), which the admin key must not be. */
  publishApiKey?: string | string[]
  /** Prefix of the routes. @default '/admin' */
  prefix?: string
}

const resultSchema = {
  type: 'object',
  properties: {
    instances: { type: ['integer', 'null'], description: 'instances that acted on it' },
    connections: { type: ['integer', 'null'], description: 'open connections it touched on them' }
  }
}

/** A short id for a key, for the audit log: the first hex digits of its SHA-256, never the key. */
export function adminKeyId (key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12)
}

/**
 * `POST /admin/disconnect`, `/admin/revoke`, `/admin/subscribe`, `/admin/unsubscribe` (SPEC
 * section 15) onto `app.notify`'s control methods; each answers `{instances, connections}`.
 */
async function fastifyNotifyAdminApi (app: FastifyInstance, opts: NotifyAdminApiOptions): Promise<void> {
  const keys = Array.isArray(opts.apiKey) ? opts.apiKey : [opts.apiKey]
  const matches = apiKeyMatcher(opts.apiKey)
  const publishKeys = opts.publishApiKey === undefined ? [] : Array.isArray(opts.publishApiKey) ? opts.publishApiKey : [opts.publishApiKey]
  if (keys.some((key) => publishKeys.includes(key))) throw new InvalidOptionError('the admin apiKey must not be a publish API key')
  const prefix = opts.prefix ?? '/admin'
  if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new InvalidOptionError('prefix must start with /')
  // Which key, by id: checked in constant time against all of them, then named.
  const ids = new Map(keys.map((key) => [key, adminKeyId(key)]))

  const authenticate = async (request: FastifyRequest): Promise<void> => {
    if (!matches(request.headers['x-api-key'])) throw new BadAdminKeyError()
  }

  for (const action of CONTROL_ACTIONS) {
    app.post(`${prefix}/${action}`, {
      onRequest: authenticate,
      bodyLimit: 16384,
      schema: {
        summary: `Admin: ${action}`,
        tags: ['notify-edge-admin'],
        response: { 200: resultSchema, 400: errorSchema, 401: errorSchema, 503: errorSchema }
      } as FastifySchema
    }, async (request) => app.notify[action](request.body as never, { by: ids.get(request.headers['x-api-key'] as string) }))
  }
}

export const notifyAdminApi = fp(fastifyNotifyAdminApi, {
  fastify: '5.x',
  name: 'notify-edge-admin-api',
  dependencies: ['notify-edge-control']
})
export default notifyAdminApi
