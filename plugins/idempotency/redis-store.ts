import { InvalidOptionError } from '../errors.js'
import type { PublishResult } from '../notify.js'
import type { IdempotencyEntry, IdempotencyStore } from './store.js'

/** The one command the store sends; any ioredis client (v5 or @fastify/redis's v6) fits. */
export interface RedisIdempotencyClient {
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

export interface RedisIdempotencyStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisIdempotencyClient
  /** Prefix of every key. @default 'notify:idempotency:' */
  keyPrefix?: string
}

// Read-or-take in one step: of two instances claiming one key at once, exactly one gets nil.
const CLAIM = `local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false`
const COMPLETE = "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1"
// Only the claim that set the marker may drop it: a slow instance must not free a later claim.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0`

/** Idempotency keys in Redis, shared by every instance: a key publishes once across all of them. */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly #client: RedisIdempotencyClient
  readonly keyPrefix: string

  constructor (opts: RedisIdempotencyStoreOptions) {
    if (typeof opts?.client?.eval !== 'function') throw new InvalidOptionError('client must be an ioredis client')
    const keyPrefix = opts.keyPrefix ?? 'notify:idempotency:'
    if (typeof keyPrefix !== 'string') throw new InvalidOptionError('keyPrefix must be a string')
    this.#client = opts.client
    this.keyPrefix = keyPrefix
  }

  async claim (key: string, token: string, pendingTtl: number): Promise<IdempotencyEntry | null> {
    const held = await this.#client.eval(CLAIM, 1, this.keyPrefix + key, pending(token), pendingTtl)
    if (typeof held !== 'string') return null
    const value = JSON.parse(held) as { pending?: string, result?: PublishResult }
    return value.result === undefined ? { state: 'pending' } : { state: 'done', result: value.result }
  }

  async complete (key: string, result: PublishResult, ttl: number): Promise<void> {
    await this.#client.eval(COMPLETE, 1, this.keyPrefix + key, JSON.stringify({ result }), ttl)
  }

  async release (key: string, token: string): Promise<void> {
    await this.#client.eval(RELEASE, 1, this.keyPrefix + key, pending(token))
  }

  async extend (key: string, token: string, pendingTtl: number): Promise<void> {
    await this.#client.eval(EXTEND, 1, this.keyPrefix + key, pending(token), pendingTtl)
  }
}

function pending (token: string): string {
  return JSON.stringify({ pending: token })
}
