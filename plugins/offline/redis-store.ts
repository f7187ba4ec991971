import { InvalidOptionError } from '../errors.js'
import type { DeliveryClaimStore, PushSubscriptionJSON, PushSubscriptionStore } from './store.js'

/** The one command the stores send; any ioredis client (v5 or @fastify/redis's v6) fits. */
export interface RedisOfflineClient {
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

export interface RedisOfflineStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisOfflineClient
  /** Prefix of every key. @default 'notify:push:' (subscriptions), 'notify:offline:' (claims) */
  keyPrefix?: string
}

function checked (opts: RedisOfflineStoreOptions, fallback: string): { client: RedisOfflineClient, keyPrefix: string } {
  if (typeof opts?.client?.eval !== 'function') throw new InvalidOptionError('client must be an ioredis client')
  const keyPrefix = opts.keyPrefix ?? fallback
  if (typeof keyPrefix !== 'string') throw new InvalidOptionError('keyPrefix must be a string')
  return { client: opts.client, keyPrefix }
}

// A hash of endpoint → subscription and a sorted set of endpoints by time added, trimmed to the
// cap in the same step: two instances adding at once cannot leave a user over it.
const ADD = `redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #popped, 2 do redis.call('HDEL', KEYS[1], popped[i]) end
end
return redis.call('HLEN', KEYS[1])`
const REMOVE = `redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])`
const LIST = `local out = {}
for _, endpoint in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local json = redis.call('HGET', KEYS[1], endpoint)
  if json then out[#out + 1] = json end
end
return out`

/** Push subscriptions in Redis, shared by every instance: whichever handles a publish finds them. */
export class RedisPushSubscriptionStore implements PushSubscriptionStore {
  readonly #client: RedisOfflineClient
  readonly keyPrefix: string
  // Within one add, later calls must sort after earlier ones even in the same millisecond.
  #last = 0

  constructor (opts: RedisOfflineStoreOptions) {
    const { client, keyPrefix } = checked(opts, 'notify:push:')
    this.#client = client
    this.keyPrefix = keyPrefix
  }

  // One hash tag per user: both keys live on one Redis Cluster slot.
  #keys (user: string): [string, string] {
    const base = `${this.keyPrefix}{${user}}`
    return [base, `${base}:order`]
  }

  async add (user: string, subscription: PushSubscriptionJSON, max: number): Promise<number> {
    this.#last = Math.max(Date.now(), this.#last + 1)
    return Number(await this.#client.eval(ADD, 2, ...this.#keys(user), subscription.endpoint, JSON.stringify(subscription), this.#last, max))
  }

  async remove (user: string, endpoint: string): Promise<boolean> {
    return Number(await this.#client.eval(REMOVE, 2, ...this.#keys(user), endpoint)) === 1
  }

  async list (user: string): Promise<PushSubscriptionJSON[]> {
    const found = await this.#client.eval(LIST, 2, ...this.#keys(user)) as string[]
    return found.map((json) => JSON.parse(json) as PushSubscriptionJSON)
  }
}

const CLAIM = "return redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) and 1 or 0"

/** Delivery claims in Redis (`SET NX EX`): of all instances, exactly one sends a copy. */
export class RedisDeliveryClaims implements DeliveryClaimStore {
  readonly #client: RedisOfflineClient
  readonly keyPrefix: string

  constructor (opts: RedisOfflineStoreOptions) {
    const { client, keyPrefix } = checked(opts, 'notify:offline:')
    this.#client = client
    this.keyPrefix = keyPrefix
  }

  async claim (key: string, ttl: number): Promise<boolean> {
    return Number(await this.#client.eval(CLAIM, 1, this.keyPrefix + key, ttl)) === 1
  }
}
