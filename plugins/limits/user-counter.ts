import { randomUUID } from 'node:crypto'
import { redisScript, runScriptWithin, type RedisScriptClient } from '../redis-script.js'
import { within } from '../util.js'

/** Connections per user across instances: a slot is taken before the upgrade and given back at close. */
export interface UserConnectionCounter {
  /** Takes a slot for `user` unless they hold `max` already; false when they do. */
  acquire (user: string, max: number): Promise<boolean>
  /** Gives a slot back. */
  release (user: string): Promise<void>
  close (): Promise<void>
}

/** One instance's counts. */
export class MemoryUserCounter implements UserConnectionCounter {
  readonly #counts = new Map<string, number>()

  async acquire (user: string, max: number): Promise<boolean> {
    const count = this.#counts.get(user) ?? 0
    if (count >= max) return false
    this.#counts.set(user, count + 1)
    return true
  }

  async release (user: string): Promise<void> {
    const count = (this.#counts.get(user) ?? 1) - 1
    if (count > 0) this.#counts.set(user, count)
    else this.#counts.delete(user)
  }

  async close (): Promise<void> {}
}

// KEYS[1]: the user's hash (instance id → slots). ARGV: instance-key prefix, this instance, max.
// Slots of an instance whose liveness key has expired (it died) are dropped before counting, so
// a SIGKILLed instance's users get their slots back within the liveness TTL.
const ACQUIRE = redisScript(`
local fields = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. fields[i]) == 0 then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    total = total + tonumber(fields[i + 1])
  end
end
if total >= tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('PEXPIRE', KEYS[1], 86400000)
return 1
`)

const RELEASE = redisScript(`
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`)

/** The client the Redis counter needs: scripts and SET. */
export interface RedisCounterClient extends RedisScriptClient {
  set (key: string, value: string, expiry: 'PX', ms: number): Promise<unknown>
  del (key: string): Promise<unknown>
}

/**
 * Counts in Redis, atomically across instances: a hash per user (`<prefix>:conns:<user>`, a slot
 * count per instance) and a liveness key per instance refreshed every `ttl / 3` ms.
 */
export class RedisUserCounter implements UserConnectionCounter {
  readonly #client: RedisCounterClient
  readonly #prefix: string
  readonly #instance = randomUUID()
  readonly #timeout: number
  readonly #ttl: number
  readonly #timer: NodeJS.Timeout

  constructor (opts: { client: RedisCounterClient, prefix: string, timeout?: number, ttl?: number, onError?: (err: unknown) => void }) {
    this.#client = opts.client
    this.#prefix = opts.prefix
    this.#timeout = opts.timeout ?? 1000
    this.#ttl = opts.ttl ?? 30_000
    const alive = (): void => { this.#alive().catch(opts.onError ?? (() => {})) }
    alive()
    this.#timer = setInterval(alive, Math.floor(this.#ttl / 3))
    this.#timer.unref()
  }

  #alive (): Promise<unknown> {
    return this.#client.set(`${this.#prefix}:instance:${this.#instance}`, '1', 'PX', this.#ttl)
  }

  #key (user: string): string {
    return `${this.#prefix}:conns:${Buffer.from(user).toString('base64url')}`
  }

  async #run (script: ReturnType<typeof redisScript>, user: string, args: Array<string | number>): Promise<unknown> {
    return await runScriptWithin(this.#client, this.#timeout, script, [this.#key(user)], args)
  }

  async acquire (user: string, max: number): Promise<boolean> {
    return await this.#run(ACQUIRE, user, [`${this.#prefix}:instance:`, this.#instance, max]) === 1
  }

  async release (user: string): Promise<void> {
    await this.#run(RELEASE, user, [this.#instance])
  }

  async close (): Promise<void> {
    clearInterval(this.#timer)
    // Its slots go with it: the next acquire for each of its users drops them.
    await within(this.#timeout, Promise.resolve(this.#client.del(`${this.#prefix}:instance:${this.#instance}`)).catch(() => {}))
  }
}
