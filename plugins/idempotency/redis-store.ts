import { InvalidOptionError } from '../errors.js'
import type { PublishResult } from '../notify.js'
import { WriteCoalescer } from '../redis.js'
import { redisScript, runScript, type RedisScript, type RedisScriptClient } from '../redis-script.js'
import type { IdempotencyEntry, IdempotencyStore } from './store.js'

/**
 * The commands the store sends; any ioredis client (v5 or @fastify/redis's v6) fits. With
 * `evalsha` its scripts go by hash (loaded with EVAL when Redis lacks them), else as text.
 */
export interface RedisIdempotencyClient {
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
  evalsha? (sha: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

export interface RedisIdempotencyStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisIdempotencyClient
  /** Prefix of every key. @default 'notify:idempotency:' */
  keyPrefix?: string
}

// Read-or-take in one step: of two instances claiming one key at once, exactly one gets nil.
const CLAIM = redisScript(`local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false`)
const COMPLETE = redisScript("redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1")
// Only the claim that set the marker may drop it: a slow instance must not free a later claim.
const RELEASE = redisScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

const EXTEND = redisScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0`)

/** Idempotency keys in Redis, shared by every instance: a key publishes once across all of them. */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly #client: RedisIdempotencyClient
  /** Calls made together (the claims of a batch of JetStream messages) leave in one write. */
  readonly #writes: WriteCoalescer
  readonly keyPrefix: string

  constructor (opts: RedisIdempotencyStoreOptions) {
    if (typeof opts?.client?.eval !== 'function') throw new InvalidOptionError('client must be an ioredis client')
    const keyPrefix = opts.keyPrefix ?? 'notify:idempotency:'
    if (typeof keyPrefix !== 'string') throw new InvalidOptionError('keyPrefix must be a string')
    this.#client = opts.client
    this.#writes = new WriteCoalescer(opts.client, 0)
    this.keyPrefix = keyPrefix
  }

  async claim (key: string, token: string, pendingTtl: number): Promise<IdempotencyEntry | null> {
    const held = await this.#run(CLAIM, key, pending(token), pendingTtl)
    if (typeof held !== 'string') return null
    const value = JSON.parse(held) as { pending?: string, result?: PublishResult }
    return value.result === undefined ? { state: 'pending' } : { state: 'done', result: value.result }
  }

  async complete (key: string, result: PublishResult, ttl: number): Promise<void> {
    await this.#run(COMPLETE, key, JSON.stringify({ result }), ttl)
  }

  async release (key: string, token: string): Promise<void> {
    await this.#run(RELEASE, key, pending(token))
  }

  async extend (key: string, token: string, pendingTtl: number): Promise<void> {
    await this.#run(EXTEND, key, pending(token), pendingTtl)
  }

  /** EVALSHA (EVAL when Redis lacks the script): the script's text is not sent, nor hashed by Redis, on every call. */
  async #run (script: RedisScript, key: string, ...args: Array<string | number>): Promise<unknown> {
    this.#writes.hold()
    const client = this.#client
    if (typeof client.evalsha !== 'function') return client.eval(script.source, 1, this.keyPrefix + key, ...args)
    return runScript(client as RedisScriptClient, script, [this.keyPrefix + key], args)
  }
}

function pending (token: string): string {
  return JSON.stringify({ pending: token })
}
