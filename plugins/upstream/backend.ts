import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { UnauthorizedError } from '../errors.js'
import type { ClientPublishHook, PublishTarget } from '../inbound.js'
import type { Principal } from '../principal.js'
import { CALLER_HEADER, callerSecretOption, verifyCallerToken } from './caller-token.js'

export { CALLER_HEADER, signCallerToken, verifyCallerToken } from './caller-token.js'

export interface NotifyBackendOptions {
  /** The secret the dedicated edge signs caller tokens with (its `upstream.backend.callerSecret`). */
  callerSecret: string
}

export interface NotifyBackend {
  /** Serves a stream's client-publish hook at `path` (`clientPublish: 'http://this-service/<path>'` on the edge). */
  publishHook (path: string, hook: ClientPublishHook): void
  /** Serves a channel's `authorize` at `path`: `{ "allow": true|false }`. */
  authorizeHook (path: string, authorize: (principal: Principal, target: PublishTarget) => boolean | Promise<boolean>): void
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Routes for a dedicated edge's hooks (see `NotifyBackend`). */
    notifyBackend: NotifyBackend
  }
  interface FastifyRequest {
    /** The WebSocket caller: set on a handshake, an RPC, or (backend) a request carrying a valid caller token; else null. */
    notifyPrincipal: Principal | null
  }
}

const hookBody = {
  type: 'object',
  required: ['target'],
  properties: {
    target: { type: 'object', required: ['stream'], properties: { stream: { type: 'string' }, key: { type: 'string' } } }
  }
}

/**
 * The backend side of a dedicated edge (SPEC section 13): every request carrying a valid
 * `x-notify-caller` token gets its principal as `request.notifyPrincipal`; one carrying an invalid
 * or expired one answers 401. Routes for hooks call the app's own functions, so one hook serves an
 * embedded edge (in process) and a split-out one (over HTTP) alike.
 */
async function fastifyNotifyBackend (app: FastifyInstance, opts: NotifyBackendOptions): Promise<void> {
  const secret = callerSecretOption(opts.callerSecret)
  if (!app.hasRequestDecorator('notifyPrincipal')) app.decorateRequest('notifyPrincipal', null)
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const token = request.headers[CALLER_HEADER]
    if (token === undefined) return
    const principal = verifyCallerToken(secret, token)
    if (principal === null) throw new UnauthorizedError('invalid or expired caller token')
    request.notifyPrincipal = principal
  })
  const caller = (request: FastifyRequest): Principal => {
    if (request.notifyPrincipal === null) throw new UnauthorizedError('a caller token is required')
    return request.notifyPrincipal
  }
  app.decorate('notifyBackend', {
    publishHook (path, hook) {
      app.post(path, { schema: { body: hookBody, hide: true } as object }, async (request) => {
        const { target, data } = request.body as { target: PublishTarget, data: unknown }
        return await hook(caller(request), target, data)
      })
    },
    authorizeHook (path, authorize) {
      app.post(path, { schema: { body: hookBody, hide: true } as object }, async (request) => {
        const { target } = request.body as { target: PublishTarget }
        return { allow: (await authorize(caller(request), target)) === true }
      })
    }
  } satisfies NotifyBackend)
}

export const notifyBackend = fp(fastifyNotifyBackend, { fastify: '5.x', name: 'notify-edge-backend' })
export default notifyBackend
