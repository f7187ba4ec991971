// Keys from an auth service's JWKS (SPEC section 11), for @fastify/jwt's key callback. Written
// here rather than taken from get-jwks: that one fetches once per unknown `kid` with no rate limit
// (any caller can make the edge hammer the auth service), forgets a stale key after its `ttl`
// while the auth service is down, and its fetch timeout is not a `fetch` option (a hanging
// endpoint hangs the handshake).
import { createPublicKey, type JsonWebKey } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { InvalidOptionError, UnauthorizedError } from './errors.js'
import { positiveInteger } from './util.js'

export type JwksAlgorithm = 'RS256' | 'ES256'

export interface JwksOptions {
  /** The key set's URL, e.g. `https://auth.example.com/.well-known/jwks.json`. */
  url: string
  /** The one algorithm tokens may use; keys and tokens of any other are refused. */
  algorithm: JwksAlgorithm
  /** After this long the set is refetched in the background (known keys keep working meanwhile), in ms. @default 600000 */
  maxAge?: number
  /** Least time between two fetches that an unknown `kid` triggers, in ms. @default 30000 */
  cooldown?: number
  /** How long one fetch may take, in ms. @default 2000 */
  timeout?: number
}

const NO_KEYS_RETRY = 1000

interface Jwk { kid?: unknown, kty?: unknown, crv?: unknown, alg?: unknown, use?: unknown }

const KEY_TYPE: Record<JwksAlgorithm, (jwk: Jwk) => boolean> = {
  RS256: (jwk) => jwk.kty === 'RSA',
  ES256: (jwk) => jwk.kty === 'EC' && jwk.crv === 'P-256'
}

/** An auth service's signing keys by `kid`, fetched on demand and kept through its outages. */
export class JwksKeySet {
  readonly #url: URL
  readonly #algorithm: JwksAlgorithm
  readonly #maxAge: number
  readonly #cooldown: number
  readonly #timeout: number
  readonly #log: FastifyBaseLogger
  #keys = new Map<string, string>()
  #fetchedAt = -Infinity
  #triedAt = -Infinity
  #fetching: Promise<void> | null = null
  /** Fetches made, for tests and metrics. */
  fetches = 0

  constructor (opts: JwksOptions, log: FastifyBaseLogger) {
    try {
      this.#url = new URL(opts.url)
    } catch {
      throw new InvalidOptionError(`jwksUrl must be an absolute URL, got ${String(opts.url)}`)
    }
    if (this.#url.protocol !== 'https:' && this.#url.protocol !== 'http:') throw new InvalidOptionError('jwksUrl must be http: or https:')
    if (opts.algorithm !== 'RS256' && opts.algorithm !== 'ES256') throw new InvalidOptionError('algorithm must be RS256 or ES256 with a JWKS')
    this.#algorithm = opts.algorithm
    this.#maxAge = positiveInteger('jwks.maxAge', opts.maxAge, 600_000)
    this.#cooldown = positiveInteger('jwks.cooldown', opts.cooldown, 30_000)
    this.#timeout = positiveInteger('jwks.timeout', opts.timeout, 2000)
    this.#log = log
  }

  /** The PEM public key for a token's header; throws `FST_NOTIFY_UNAUTHORIZED` when there is none. */
  async key (header: { alg?: unknown, kid?: unknown }): Promise<string> {
    if (header.alg !== this.#algorithm) throw new UnauthorizedError(`algorithm ${String(header.alg)} not accepted`)
    if (typeof header.kid !== 'string') throw new UnauthorizedError('token has no kid')
    const now = Date.now()
    let key = this.#keys.get(header.kid)
    if (key !== undefined) {
      if (now - this.#fetchedAt > this.#maxAge && now - this.#triedAt > this.#cooldown) this.#refresh().catch(() => {})
      return key
    }
    // A rotated-in key: fetch, but at most once per cooldown whatever the callers send; until a
    // first fetch succeeds (the edge started before the auth service), once a second, and a
    // caller waits for that next try instead of being refused (the first users of an edge that
    // came up a moment before its auth service would otherwise get 401s).
    const wait = this.#fetchedAt === -Infinity ? Math.min(NO_KEYS_RETRY, this.#cooldown) : this.#cooldown
    const since = now - this.#triedAt
    if (this.#fetchedAt === -Infinity && this.#fetching === null && since < wait) {
      const triedAt = this.#triedAt
      await new Promise((resolve) => setTimeout(resolve, wait - since))
      // The try waited for is made even when Date.now() says it is a ms early: a timer counts whole
      // ms of the loop's monotonic clock, so now and then it fires a ms short by the wall clock.
      // Skipped only when another caller made it meanwhile (its outcome stands for this one).
      if (this.#fetching !== null || this.#triedAt === triedAt) await this.#refresh().catch(() => {})
    } else if (this.#fetching !== null || since >= wait) {
      await this.#refresh().catch(() => {})
    }
    key = this.#keys.get(header.kid)
    if (key === undefined) throw new UnauthorizedError('unknown key id')
    return key
  }

  /** Fetches the set now (at start-up, to fail early); rejects when it cannot. */
  refresh (): Promise<void> {
    return this.#refresh()
  }

  #refresh (): Promise<void> {
    this.#fetching ??= this.#fetch().finally(() => { this.#fetching = null })
    return this.#fetching
  }

  async #fetch (): Promise<void> {
    this.#triedAt = Date.now()
    this.fetches++
    try {
      const res = await fetch(this.#url, { signal: AbortSignal.timeout(this.#timeout), headers: { accept: 'application/json' } })
      if (!res.ok) throw new Error(`answered ${res.status}`)
      const body = await res.json() as { keys?: unknown }
      if (!Array.isArray(body.keys)) throw new Error('no "keys" array')
      this.#keys = this.#usable(body.keys as Jwk[])
      this.#fetchedAt = Date.now()
    } catch (err) {
      // The keys already known stay: tokens they signed keep working while the auth service is away.
      this.#log.warn({ err, url: this.#url.href, keys: this.#keys.size }, 'notify edge: JWKS fetch failed; keeping the keys known')
      throw err
    }
  }

  #usable (jwks: Jwk[]): Map<string, string> {
    const keys = new Map<string, string>()
    for (const jwk of jwks) {
      if (typeof jwk?.kid !== 'string' || (jwk.use !== undefined && jwk.use !== 'sig')) continue
      if ((jwk.alg !== undefined && jwk.alg !== this.#algorithm) || !KEY_TYPE[this.#algorithm](jwk)) continue
      try {
        keys.set(jwk.kid, createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string)
      } catch (err) {
        this.#log.warn({ err, kid: jwk.kid }, 'notify edge: JWKS key skipped')
      }
    }
    return keys
  }
}
