import { createHash } from 'node:crypto'
import { RateStoreUnavailableError } from '../errors.js'
import { redisScript, runScriptWithin, type RedisScriptClient } from '../redis-script.js'
import type { Rate } from './rate.js'

// The per-user publish limit across every instance on one Redis: the same token bucket as
// `Bucket` (one number, when the bucket is full again), kept in Redis and taken by one script on
// Redis's own clock, so that instances' clocks never matter. A refusal spends nothing.

// KEYS[1]: the user's key. ARGV: interval ms, burst. Returns 1 (taken) or 0 (refused).
const TAKE = redisScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local full = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + interval
if full - now > burst * interval then return 0 end
redis.call('SET', KEYS[1], string.format('%.3f', full), 'PX', math.ceil(full - now) + 1)
return 1
`)

export class FleetUserRate {
  constructor (
    private readonly client: RedisScriptClient,
    private readonly keyPrefix: string,
    readonly rate: Rate,
    private readonly timeout: number
  ) {}

  /** Takes one of `user`'s tokens fleet-wide; false when they have none left; throws `FST_NOTIFY_RATE_STORE_UNAVAILABLE` (503) when Redis does not answer. */
  async take (user: string): Promise<boolean> {
    // Hashed: a user id of any length or alphabet makes a short key of one shape.
    const key = `${this.keyPrefix}${createHash('sha256').update(user).digest('base64url')}`
    try {
      return await runScriptWithin(this.client, this.timeout, TAKE, [key], [1000 / this.rate.perSecond, this.rate.burst]) === 1
    } catch (err) {
      throw new RateStoreUnavailableError((err as Error).message)
    }
  }
}
