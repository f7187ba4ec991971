import { randomFillSync } from 'node:crypto'
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, FastifySchema, onRequestHookHandler } from 'fastify'
import { InvalidOptionError, TicketRateLimitedError, TicketStoreUnavailableError, UnauthorizedError } from '../errors.js'
import { metricsOf } from '../recorder.js'
import { refuseRevoked } from '../control-hooks.js'
import { bearerToken, principalFromJwt, type Principal } from '../principal.js'
import { errorSchema } from '../schemas.js'
import { positiveInteger } from '../util.js'
import { MemoryTicketStore } from './memory-store.js'
import type { TicketRecord, TicketStore } from './store.js'

export type { TicketRecord, TicketStore } from './store.js'
export { MemoryTicketStore, type MemoryTicketStoreOptions } from './memory-store.js'
export { RedisTicketStore, type RedisTicketStoreOptions, type RedisTicketClient } from './redis-store.js'

export interface NotifyTicketsOptions {
  /** Route that issues tickets. @default '/ws/ticket' */
  path?: string
  /** Seconds a ticket can wait to be redeemed. @default 30 */
  ttl?: number
  /**
   * Where tickets live: a `RedisTicketStore` makes a ticket redeemable once on any instance.
   * @default a `MemoryTicketStore` (one instance only)
   */
  store?: TicketStore
  /**
   * Rate limit of the ticket route (`@fastify/rate-limit`), per user when the bearer token
   * verifies, per IP otherwise; over it the answer is 429. It applies to this route only; when
   * the app registered `@fastify/rate-limit` itself, its store (e.g. Redis) is used.
   * `false` turns it off. @default { max: 60, timeWindow: 60000 }
   */
  rateLimit?: TicketRateLimitOptions | false
  /**
   * Claims of the bearer token a ticket carries to its connection, which otherwise keeps none:
   * the umbrella passes `jti` and `iat` (revocation) and the control plugin's `streamsClaim`.
   * @default []
   */
  keepClaims?: string[]
}

export interface TicketRateLimitOptions {
  /** Tickets per key per window. @default 60 */
  max?: number
  /** Window, in ms. @default 60000 */
  timeWindow?: number
}

/** Issues and redeems one-time WebSocket tickets. */
export interface NotifyTickets {
  /** Issues a ticket for `record`; resolves with the ticket and its TTL in seconds. */
  issue (record: TicketRecord): Promise<{ ticket: string, expiresIn: number }>
  /** Redeems a ticket once; null when unknown, expired or already used. */
  redeem (ticket: string): Promise<TicketRecord | null>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** One-time ticket issuance and redemption (see `NotifyTickets`). */
    notifyTickets: NotifyTickets
  }
}

// Tickets are 256 random bits in base64url: 43 characters.
const TICKET_SHAPE = /^[A-Za-z0-9_-]{43}$/
const TICKET_BYTES = 32
// Where the ticket route keeps a request's bearer verification (see `verify`).
const VERIFIED = 'notifyTicketPrincipal'

// Random bits for 128 tickets at a time, each byte used once (crypto.randomUUID pools the same
// way): one call into the CSPRNG per ticket was a few µs of every handshake.
const entropy = Buffer.alloc(TICKET_BYTES * 128)
let drawn = entropy.length

function newTicket (): string {
  if (drawn === entropy.length) {
    randomFillSync(entropy)
    drawn = 0
  }
  const ticket = entropy.toString('base64url', drawn, drawn + TICKET_BYTES)
  drawn += TICKET_BYTES
  return ticket
}

/** The claims of `keep` that the token has; undefined when it has none of them. */
function keptClaims (claims: Readonly<Record<string, unknown>>, keep: string[]): Record<string, unknown> | undefined {
  let kept: Record<string, unknown> | undefined
  for (const claim of keep) {
    if (claims[claim] === undefined) continue
    kept ??= {}
    kept[claim] = claims[claim]
  }
  return kept
}

async function fastifyNotifyTickets (app: FastifyInstance, opts: NotifyTicketsOptions): Promise<void> {
  const ttl = positiveInteger('ttl', opts.ttl, 30)
  const path = opts.path ?? '/ws/ticket'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const keepClaims = opts.keepClaims ?? []
  if (!Array.isArray(keepClaims) || !keepClaims.every((claim) => typeof claim === 'string' && claim.length > 0)) {
    throw new InvalidOptionError('keepClaims must be an array of claim names')
  }
  const store = opts.store ?? new MemoryTicketStore()
  if (typeof store.issue !== 'function' || typeof store.redeem !== 'function') {
    throw new InvalidOptionError('store must implement issue() and redeem()')
  }

  async function storeCall<T> (call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (err) {
      throw new TicketStoreUnavailableError((err as Error).message)
    }
  }

  const tickets: NotifyTickets = {
    async issue (record) {
      const ticket = newTicket()
      await storeCall(() => store.issue(ticket, record, ttl))
      return { ticket, expiresIn: ttl }
    },
    async redeem (ticket) {
      if (!TICKET_SHAPE.test(ticket)) return null
      return storeCall(() => store.redeem(ticket))
    }
  }
  app.decorate('notifyTickets', tickets)

  const metrics = metricsOf(app)
  // The rate limiter keys on the user, so it verifies the bearer token first; the handler reuses
  // that verification instead of repeating it (a JWT check is a good part of a handshake's CPU).
  // Kept on the request (a decorator of the route's own scope), not in a WeakMap, whose entries
  // the garbage collector pays for.
  function verify (request: FastifyRequest): Promise<Principal> {
    const holder = request as FastifyRequest & { [VERIFIED]: Promise<Principal> | null }
    if (holder[VERIFIED] === null) {
      const token = bearerToken(request.headers.authorization)
      holder[VERIFIED] = token === null
        ? Promise.reject(new UnauthorizedError('missing bearer token'))
        : principalFromJwt(app, token).then((principal) => refuseRevoked(app, principal))
    }
    return holder[VERIFIED]
  }

  const limit = opts.rateLimit === false ? null : opts.rateLimit ?? {}
  if (limit !== null && typeof limit !== 'object') throw new InvalidOptionError('rateLimit must be an object or false')
  const max = limit === null ? 0 : positiveInteger('rateLimit.max', limit.max, 60)
  const timeWindow = limit === null ? 0 : positiveInteger('rateLimit.timeWindow', limit.timeWindow, 60_000)

  // A scope of its own, so the rate limiter registered here touches no other route of the app.
  await app.register(async function ticketRoute (scope) {
    scope.decorateRequest(VERIFIED, null)
    const onRequest: onRequestHookHandler[] = []
    if (limit !== null) {
      if (!scope.hasDecorator('rateLimit')) await scope.register(rateLimit, { global: false })
      onRequest.push(scope.rateLimit({
        max,
        timeWindow,
        keyGenerator: async (request) => {
          try {
            return `user:${(await verify(request)).user}`
          } catch {
            return `ip:${request.ip}`
          }
        },
        errorResponseBuilder: (_request, context) => new TicketRateLimitedError(context.after)
      }) as onRequestHookHandler)
    }
    scope.post(path, {
      onRequest,
      // Read by @fastify/swagger: the JWT goes in as a Bearer token (security scheme `notifyBearer`).
      schema: {
        summary: 'Get a one-time WebSocket ticket',
        tags: ['notify-edge'],
        security: [{ notifyBearer: [] }],
        response: {
          200: {
            type: 'object',
            required: ['ticket', 'expiresIn'],
            properties: {
              ticket: { type: 'string', description: 'redeem once, as ?ticket= on the WebSocket handshake' },
              expiresIn: { type: 'integer', description: 'seconds the ticket can wait to be redeemed' }
            }
          },
          401: errorSchema,
          429: errorSchema,
          503: errorSchema
        }
      } as FastifySchema
    }, async (request) => {
      let principal: Principal
      try {
        principal = await verify(request)
      } catch (err) {
        metrics.authFailure('ticket', err)
        throw err
      }
      return tickets.issue({ user: principal.user as string, expiresAt: principal.expiresAt as number, claims: keptClaims(principal.claims, keepClaims) })
    })
  })
}

export const notifyTickets = fp(fastifyNotifyTickets, {
  fastify: '5.x',
  name: 'notify-edge-tickets',
  dependencies: ['@fastify/jwt']
})
export default notifyTickets
