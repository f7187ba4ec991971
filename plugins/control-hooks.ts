// What the control plugin (plugins/control/) offers the plugins that authenticate and hold
// connections: a leaf both sides import, so that neither imports the other.
import type { FastifyInstance } from 'fastify'
import { UnauthorizedError } from './errors.js'
import type { Principal } from './principal.js'

/** A subscribe or unsubscribe the server makes on a connection's behalf, handled as the client's own frame. */
export interface ServerFrame {
  event: 'subscribe' | 'unsubscribe'
  id: undefined
  streams: Array<{ stream: string }>
}

/** An open connection, as control acts on it. */
export interface ControlledConnection {
  readonly principal: Principal
  close (code: number, reason: string): void
  /** Handles `frame` in order with the client's own frames, answering as to them. */
  enqueue (frame: ServerFrame): void
}

/** The hooks of the control plugin. */
export interface NotifyControlHooks {
  /** Whether the token behind `principal` is revoked (by `jti`, or by user and issue time) on this instance's list. */
  revoked (principal: Principal): boolean
  /** Called by a streams route when a socket opens: closes it if revoked meanwhile, subscribes it to its token's streams claim. */
  opened (connection: ControlledConnection): void
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Revocation check and connection hooks of the control plugin; absent without it. */
    notifyControl: NotifyControlHooks
  }
}

/**
 * `principal`, or `FST_NOTIFY_UNAUTHORIZED` (401) when its token is revoked. Every place that
 * accepts a credential calls it (ticket issuance, the handshake, `refresh`; an SSE route should
 * too); without the control plugin it lets everything through.
 */
export function refuseRevoked (app: FastifyInstance, principal: Principal): Principal {
  if (app.hasDecorator('notifyControl') && app.notifyControl.revoked(principal)) throw new UnauthorizedError('token revoked')
  return principal
}
