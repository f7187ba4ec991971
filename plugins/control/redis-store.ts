import type { Revocation } from '../control-commands.js'
import { InvalidOptionError } from '../errors.js'
import { redisScript, runScriptWithin, type RedisScriptClient } from '../redis-script.js'
import { positiveInteger } from '../util.js'
import type { RevocationStore } from './store.js'

/** Where the edge keeps the list on Redis, for a topic prefix: edges and publishers agree on it. */
export function revokedKey (prefix: string): string {
  return `${prefix}:revoked`
}

export interface RedisRevocationStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisScriptClient
  /** The sorted set holding the list. @default 'notify:revoked' */
  key?: string
  /** How long a call may take, in ms. @default 1000 */
  timeout?: number
}

// One sorted set: each entry a member scored by its expiry. A write drops the expired entries and
// sets the key to expire with its last entry, so the list cleans itself and vanishes when empty.
// KEYS[1] the set; ARGV: now, expiry, member.
const ADD = redisScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
`)

// ARGV: now. Entries in force, as member, score, member, score…
const LIST = redisScript(`
return redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE', 'WITHSCORES')
`)

/**
 * The revocation list in Redis, shared by every instance and every publisher on it. Redis keeps it
 * only as durably as it keeps anything (docs/control.md: a restart without persistence loses it,
 * and the instances still running write their copies back).
 */
export class RedisRevocationStore implements RevocationStore {
  readonly #client: RedisScriptClient
  readonly key: string
  readonly #timeout: number

  constructor (opts: RedisRevocationStoreOptions) {
    if (typeof opts?.client?.evalsha !== 'function' || typeof opts.client.eval !== 'function') {
      throw new InvalidOptionError('client must be an ioredis client')
    }
    const key = opts.key ?? 'notify:revoked'
    if (typeof key !== 'string' || key.length === 0) throw new InvalidOptionError('key must be a non-empty string')
    this.#client = opts.client
    this.key = key
    this.#timeout = positiveInteger('timeout', opts.timeout, 1000)
  }

  async add (revocation: Revocation): Promise<void> {
    const { expiresAt, ...entry } = revocation
    await this.#run(ADD, [Date.now(), expiresAt, JSON.stringify(entry)])
  }

  async list (): Promise<Revocation[]> {
    const flat = await this.#run(LIST, [Date.now()]) as string[]
    const entries: Revocation[] = []
    for (let i = 0; i < flat.length; i += 2) {
      entries.push({ ...JSON.parse(flat[i]) as object, expiresAt: Number(flat[i + 1]) } as Revocation)
    }
    return entries
  }

  async #run (script: ReturnType<typeof redisScript>, args: Array<string | number>): Promise<unknown> {
    return await runScriptWithin(this.#client, this.#timeout, script, [this.key], args)
  }
}
