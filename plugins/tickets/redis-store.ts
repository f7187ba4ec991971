import { InvalidOptionError } from '../errors.js'
import type { TicketRecord, TicketStore } from './store.js'

/**
 * The two commands the store sends. Any ioredis client fits (`app.redis` of @fastify/redis is
 * ioredis 6, ours is ioredis 5): the store never names either version's types.
 */
export interface RedisTicketClient {
  set (key: string, value: string, expiry: 'EX', seconds: number, mode: 'NX'): Promise<string | null>
  getdel (key: string): Promise<string | null>
}

export interface RedisTicketStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisTicketClient
  /** Prefix of every ticket key. @default 'notify:ticket:' */
  keyPrefix?: string
}

/**
 * Tickets in Redis, redeemable once across every instance: `SET key value EX ttl NX` on issue,
 * `GETDEL` on redeem (atomic, Redis ≥ 6.2), so of any number of concurrent redeems one wins.
 */
export class RedisTicketStore implements TicketStore {
  readonly #client: RedisTicketClient
  readonly keyPrefix: string

  constructor (opts: RedisTicketStoreOptions) {
    if (typeof opts?.client?.set !== 'function' || typeof opts.client.getdel !== 'function') {
      throw new InvalidOptionError('client must be an ioredis client')
    }
    const keyPrefix = opts.keyPrefix ?? 'notify:ticket:'
    if (typeof keyPrefix !== 'string') throw new InvalidOptionError('keyPrefix must be a string')
    this.#client = opts.client
    this.keyPrefix = keyPrefix
  }

  async issue (ticket: string, record: TicketRecord, ttlSeconds: number): Promise<void> {
    const value = JSON.stringify({ user: record.user, expiresAt: record.expiresAt, claims: record.claims })
    const stored = await this.#client.set(this.keyPrefix + ticket, value, 'EX', ttlSeconds, 'NX')
    // 256 random bits do not collide; if they ever did, the older ticket must not change hands.
    if (stored === null) throw new Error('ticket already exists')
  }

  async redeem (ticket: string): Promise<TicketRecord | null> {
    const value = await this.#client.getdel(this.keyPrefix + ticket)
    if (value === null) return null
    const { user, expiresAt, claims } = JSON.parse(value) as TicketRecord
    return claims === undefined ? { user, expiresAt } : { user, expiresAt, claims }
  }
}
