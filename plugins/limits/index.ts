import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Counter } from 'prom-client'
import { EdgeBusyError, InvalidOptionError, TooManyConnectionsError } from '../errors.js'
import { positiveInteger } from '../util.js'
import { MemoryUserCounter, type UserConnectionCounter } from './user-counter.js'

export { MemoryUserCounter, RedisUserCounter, type RedisCounterClient, type UserConnectionCounter } from './user-counter.js'

export interface NotifyConnectionLimitsOptions {
  /** Open sockets this instance takes, all routes together; over it 503 with `Retry-After` before the upgrade, and `ready()` is false. @default unlimited */
  maxConnections?: number
  /** Handshakes this instance starts per second; over it 503 with `Retry-After: 1`. @default unlimited */
  maxHandshakesPerSecond?: number
  /** Sockets one user may hold across every instance sharing `counter`; over it 429 before the upgrade. @default unlimited */
  maxConnectionsPerUser?: number
  /** Where per-user counts live: a `RedisUserCounter` for all instances. @default a `MemoryUserCounter` (this instance) */
  counter?: UserConnectionCounter
  /** `Retry-After` of a refusal at the connection cap, in seconds. @default 5 */
  retryAfter?: number
}

/** What the streams routes call around each handshake. */
export interface NotifyConnectionLimits {
  /** `onRequest` hook of a WebSocket route, after authentication: refuses or takes a slot. */
  admit (request: FastifyRequest, reply: FastifyReply): Promise<void>
  /** The TCP connection of an admitted handshake closed (called by `admit`'s listener). */
  released (user: string | null): void
  /** Whether this instance is below its connection cap (for `/ready`). */
  ready (): boolean
  /** Open and admitted sockets on this instance. */
  readonly open: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Connection and handshake limits (see `NotifyConnectionLimits`); absent without the limits plugin. */
    notifyLimits: NotifyConnectionLimits
  }
}

async function fastifyNotifyLimits (app: FastifyInstance, opts: NotifyConnectionLimitsOptions): Promise<void> {
  const maxConnections = positiveInteger('maxConnections', opts.maxConnections, Infinity)
  const maxRate = positiveInteger('maxHandshakesPerSecond', opts.maxHandshakesPerSecond, Infinity)
  const maxPerUser = positiveInteger('maxConnectionsPerUser', opts.maxConnectionsPerUser, Infinity)
  const retryAfter = positiveInteger('retryAfter', opts.retryAfter, 5)
  const counter = opts.counter ?? new MemoryUserCounter()
  if (typeof counter?.acquire !== 'function' || typeof counter.release !== 'function') throw new InvalidOptionError('counter must implement acquire() and release()')
  app.addHook('onClose', () => counter.close())
  const refused = refusalCounter(app)

  let open = 0
  let second = 0
  let started = 0

  function busy (reply: FastifyReply, reason: 'connections' | 'rate', seconds: number, why: string): Error {
    refused(reason)
    reply.header('retry-after', String(seconds))
    return new EdgeBusyError(why)
  }

  const limits: NotifyConnectionLimits = {
    get open () { return open },
    ready: () => open < maxConnections,
    async admit (request, reply) {
      // `app.injectWS()` has no TCP connection whose end would give a slot back: not counted.
      const tcp = request.raw.socket as typeof request.raw.socket | undefined
      if (tcp == null) return
      if (open >= maxConnections) throw busy(reply, 'connections', retryAfter, `at most ${maxConnections} connections on this instance`)
      if (maxRate !== Infinity) {
        const now = Math.floor(Date.now() / 1000)
        if (now !== second) {
          second = now
          started = 0
        }
        if (++started > maxRate) throw busy(reply, 'rate', 1, `at most ${maxRate} handshakes per second on this instance`)
      }
      const user = request.notifyPrincipal?.user ?? null
      if (user !== null && maxPerUser !== Infinity) {
        let admitted: boolean
        try {
          admitted = await counter.acquire(user, maxPerUser)
        } catch (err) {
          throw busy(reply, 'connections', 1, `connection counts unavailable: ${(err as Error).message}`)
        }
        if (!admitted) {
          refused('user')
          throw new TooManyConnectionsError(maxPerUser)
        }
      }
      // Counted until the TCP connection ends: whether the WebSocket opened and closed, or never opened.
      open++
      tcp.once('close', () => limits.released(user))
    },
    released (user) {
      open--
      if (user !== null && maxPerUser !== Infinity) {
        counter.release(user).catch((err: unknown) => app.log.warn({ err }, 'notify limits: a connection slot was not given back; it goes with this instance\'s liveness'))
      }
    }
  }
  app.decorate('notifyLimits', limits)
}

function refusalCounter (app: FastifyInstance): (reason: 'connections' | 'rate' | 'user') => void {
  if (!app.hasDecorator('notifyMetrics')) return () => {}
  const { registry, prefix } = app.notifyMetrics
  const counter = new Counter({ name: `${prefix}handshakes_refused_total`, help: 'Handshakes refused before the upgrade by a limit: connections (instance cap, 503), rate (handshakes per second, 503), user (per user across instances, 429)', labelNames: ['reason'], registers: [registry] })
  for (const reason of ['connections', 'rate', 'user']) counter.inc({ reason }, 0)
  return (reason) => counter.inc({ reason })
}

export const notifyLimits = fp(fastifyNotifyLimits, { fastify: '5.x', name: 'notify-edge-limits' })
export default notifyLimits
