import { InvalidOptionError } from '../errors.js'
import { positiveInteger } from '../util.js'

/** A rate: so many per second on average, `burst` at once. */
export interface RateOptions {
  perSecond?: number
  burst?: number
}

export interface Rate { perSecond: number, burst: number }

export function rateOption (name: string, value: RateOptions | undefined, fallback: Rate): Rate {
  if (value === undefined) return fallback
  if (value === null || typeof value !== 'object') throw new InvalidOptionError(`${name} must be { perSecond, burst }`)
  return {
    perSecond: positiveInteger(`${name}.perSecond`, value.perSecond, fallback.perSecond),
    burst: positiveInteger(`${name}.burst`, value.burst, fallback.burst)
  }
}

/**
 * A token bucket kept as one number: when it would be full again (the generic cell rate
 * algorithm, as the streams route's frame limit). `take` spends a token, or refuses without
 * spending one (a refused publish costs the client nothing but its frame).
 */
export class Bucket {
  #full = 0

  take (rate: Rate, now: number): boolean {
    const interval = 1000 / rate.perSecond
    const full = Math.max(this.#full, now) + interval
    if (full - now > rate.burst * interval) return false
    this.#full = full
    return true
  }

  /** Whether the bucket is full (nothing spent lately): its holder can forget it. */
  idle (now: number): boolean {
    return this.#full <= now
  }
}

/** One bucket per user on this instance, forgotten once full again (swept every `sweepMs`). */
export class UserBuckets {
  readonly #buckets = new Map<string, Bucket>()
  readonly #timer: NodeJS.Timeout

  constructor (readonly rate: Rate, sweepMs = 10_000) {
    this.#timer = setInterval(() => this.sweep(performance.now()), sweepMs)
    this.#timer.unref()
  }

  take (user: string, now: number): boolean {
    let bucket = this.#buckets.get(user)
    if (bucket === undefined) this.#buckets.set(user, bucket = new Bucket())
    return bucket.take(this.rate, now)
  }

  get size (): number {
    return this.#buckets.size
  }

  sweep (now: number): void {
    for (const [user, bucket] of this.#buckets) if (bucket.idle(now)) this.#buckets.delete(user)
  }

  close (): void {
    clearInterval(this.#timer)
  }
}
