import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { ForbiddenOriginError, InvalidOptionError, UnauthorizedError } from './errors.js'
import { originMatcher } from './origin.js'
import { metricsOf } from './recorder.js'
import { refuseRevoked } from './control-hooks.js'
import { ANONYMOUS, NO_CLAIMS, bearerToken, principalFromJwt, type Principal } from './principal.js'
import type { TicketRecord } from './tickets/store.js'
import { SpanKind, inSpan } from './tracing.js'
import type { Tracer } from '@opentelemetry/api'

export type { Principal } from './principal.js'

export interface NotifySocketAuthOptions {
  /**
   * Origins allowed to open a socket (cross-site WebSocket hijacking). A handshake with another
   * `Origin` answers 403; one without `Origin` (not a browser) is judged by its credential. Both
   * sides are normalized (scheme and host lower-cased, default port dropped, a trailing `/`
   * ignored); an entry that is no `scheme://host[:port]` fails registration.
   * @default undefined: every origin
   */
  allowedOrigins?: string[]
}

export interface HandshakeAuthOptions {
  /** Let handshakes without a credential in, as anonymous. @default false */
  anonymous?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Builds the `onRequest` hook that authenticates a WebSocket handshake before the upgrade. */
    notifySocketAuth: (opts?: HandshakeAuthOptions) => onRequestAsyncHookHandler
  }
  interface FastifyRequest {
    /** Who opened this handshake; set by the socket auth hook, null before it runs. */
    notifyPrincipal: Principal | null
  }
}

interface CredentialQuery { ticket?: unknown, token?: unknown, auth_header?: unknown }

function queryString (value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null
}

/** The principal a redeemed ticket names; throws when there was none to redeem, or it has expired. */
function ticketPrincipal (record: TicketRecord | null): Principal {
  if (record == null) throw new UnauthorizedError('unknown, expired or used ticket')
  if (record.expiresAt <= Date.now()) throw new UnauthorizedError('token expired')
  return { user: record.user, expiresAt: record.expiresAt, claims: record.claims ?? NO_CLAIMS }
}

async function fastifyNotifySocketAuth (app: FastifyInstance, opts: NotifySocketAuthOptions): Promise<void> {
  const { allowedOrigins } = opts
  if (allowedOrigins !== undefined && !Array.isArray(allowedOrigins)) throw new InvalidOptionError('allowedOrigins must be an array of origins')
  const allowed = allowedOrigins === undefined ? null : originMatcher(allowedOrigins)
  const metrics = metricsOf(app)

  // Not async: it hands back the ticket store's or the JWT check's own promise (a handshake's
  // every async frame is allocation).
  function authenticate (request: FastifyRequest): Promise<Principal> {
    const query = request.query as CredentialQuery
    const ticket = queryString(query.ticket)
    if (ticket !== null) {
      if (app.notifyTickets === undefined) return Promise.reject(new UnauthorizedError('unknown, expired or used ticket'))
      return app.notifyTickets.redeem(ticket).then(ticketPrincipal)
    }
    const token = queryString(query.token) ?? bearerToken(queryString(query.auth_header) ?? undefined) ??
      queryString(query.auth_header) ?? bearerToken(request.headers.authorization)
    if (token === null) return Promise.reject(new UnauthorizedError('missing credential'))
    return principalFromJwt(app, token)
  }

  app.decorateRequest('notifyPrincipal', null)
  app.decorate('notifySocketAuth', (handshake: HandshakeAuthOptions = {}) => {
    const anonymous = handshake.anonymous === true
    // Read here, not at registration: the notify plugin (which holds the tracer) comes later.
    const tracer = app.hasDecorator('notifyTracer') ? (app as unknown as { notifyTracer: Tracer | null }).notifyTracer : null
    const traced = tracer === null
      ? authenticate
      : (request: FastifyRequest) => inSpan(tracer, (request.query as CredentialQuery).ticket === undefined ? 'notify handshake' : 'notify handshake ticket redeem', SpanKind.SERVER, {}, () => authenticate(request))
    return async function authenticateHandshake (request) {
      try {
        const origin = request.headers.origin
        if (allowed !== null && origin !== undefined && !allowed(origin)) {
          throw new ForbiddenOriginError(origin.slice(0, 256))
        }
        request.notifyPrincipal = anonymous ? ANONYMOUS : refuseRevoked(app, await traced(request))
      } catch (err) {
        metrics.authFailure('handshake', err)
        throw err
      }
    }
  })
}

export const notifySocketAuth = fp(fastifyNotifySocketAuth, {
  fastify: '5.x',
  name: 'notify-edge-socket-auth',
  dependencies: ['@fastify/jwt']
})
export default notifySocketAuth
