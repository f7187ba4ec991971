import { randomBytes } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError, TicketStoreUnavailableError, UnauthorizedError } from '../errors.js'
import { bearerToken, principalFromJwt } from '../principal.js'
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

async function fastifyNotifyTickets (app: FastifyInstance, opts: NotifyTicketsOptions): Promise<void> {
  const ttl = positiveInteger('ttl', opts.ttl, 30)
  const path = opts.path ?? '/ws/ticket'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
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
      const ticket = randomBytes(32).toString('base64url')
      await storeCall(() => store.issue(ticket, record, ttl))
      return { ticket, expiresIn: ttl }
    },
    async redeem (ticket) {
      if (!TICKET_SHAPE.test(ticket)) return null
      return storeCall(() => store.redeem(ticket))
    }
  }
  app.decorate('notifyTickets', tickets)

  app.post(path, {
    schema: {
      response: {
        200: {
          type: 'object',
          properties: { ticket: { type: 'string' }, expiresIn: { type: 'integer' } }
        }
      }
    }
  }, async (request) => {
    const token = bearerToken(request.headers.authorization)
    if (token === null) throw new UnauthorizedError('missing bearer token')
    const principal = principalFromJwt(app, token)
    return tickets.issue({ user: principal.user as string, expiresAt: principal.expiresAt as number })
  })
}

export const notifyTickets = fp(fastifyNotifyTickets, {
  fastify: '5.x',
  name: 'notify-edge-tickets',
  dependencies: ['@fastify/jwt']
})
export default notifyTickets
