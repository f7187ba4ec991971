import { randomUUID } from 'node:crypto'
import { InvalidOptionError, PresenceUnavailableError } from '../errors.js'
import { redisScript, runScriptWithin, type RedisScript, type RedisScriptClient } from '../redis-script.js'
import { positiveInteger } from '../util.js'
import type { PresenceStore, StreamPresence, UserPresence } from './store.js'
import { PresenceTracker, userStreams, type PresenceChanges } from './tracker.js'

export type RedisPresenceClient = RedisScriptClient

export interface RedisPresenceStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisPresenceClient
  /**
   * Keys are `{<keyPrefix>}:…`: one hash slot, so that a query reads every instance's share in
   * one script, on Redis Cluster too. @default 'notify:presence'
   */
  keyPrefix?: string
  /** How often this instance says it is alive (and rewrites its share if Redis lost it), in ms. @default 5000 */
  heartbeatInterval?: number
  /**
   * An instance not heard from for this long stops counting and its keys expire, in ms: the
   * bound on how long a crashed instance's connections are still reported. @default 20000
   */
  ttl?: number
  /** How long a write or a query may take; a query over it fails with 503. @default 1000 */
  timeout?: number
  /**
   * Connection events wait this long for more before one script call writes them all, in ms
   * (see WRITE_WINDOW_MS). @default 5
   */
  writeWindow?: number
  /** Told when a write fails (it is retried in full at the next heartbeat). */
  onError?: (err: Error) => void
}

// KEYS: instances (sorted set, score: last heartbeat in Redis's clock). ARGV: this instance's key
// base, its id, ttl ms, mode, n, n public stream names, then (op, a, b) triples. Every op writes
// local truth (a value, not an increment), so a 'full' rewrite after a Redis restart is exact.
const SYNC = `
local zset, base, inst, ttl, mode = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local n = tonumber(ARGV[5])
local users, counts = base .. ':u', base .. ':s'
local keys = { users, counts }
for i = 6, 5 + n do keys[#keys + 1] = base .. ':m:' .. ARGV[i] end
if mode == 'leave' then
  redis.call('ZREM', zset, inst)
  redis.call('DEL', unpack(keys))
  return 1
end
if mode == 'full' then
  redis.call('DEL', unpack(keys))
elseif not redis.call('ZSCORE', zset, inst) then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', zset, now, inst)
redis.call('ZREMRANGEBYSCORE', zset, '-inf', now - ttl)
for i = 6 + n, #ARGV, 3 do
  local op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'u' then
    if b == '' then redis.call('HDEL', users, a) else redis.call('HSET', users, a, b) end
  elseif op == 's' then
    if b == '0' then redis.call('HDEL', counts, a) else redis.call('HSET', counts, a, b) end
  elseif op == 'a' then
    redis.call('SADD', base .. ':m:' .. a, b)
  else
    redis.call('SREM', base .. ':m:' .. a, b)
  end
end
for _, key in ipairs(keys) do redis.call('PEXPIRE', key, ttl) end
redis.call('PEXPIRE', zset, ttl)
return 1
`

// Instances heard from within ttl, by Redis's clock (no skew between instances' clocks).
const LIVE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
`

// KEYS: instances. ARGV: key prefix, ttl ms, users… Returns one HMGET answer per live instance.
const USERS = `${LIVE}
local out = {}
for i, inst in ipairs(live) do out[i] = redis.call('HMGET', ARGV[1] .. inst .. ':u', unpack(ARGV, 3)) end
return out
`

// KEYS: instances. ARGV: key prefix, ttl ms, stream, '1' to list members. Returns { connections,
// distinct users, members or nothing }.
const STREAM = `${LIVE}
local connections, sets = 0, {}
for _, inst in ipairs(live) do
  local count = redis.call('HGET', ARGV[1] .. inst .. ':s', ARGV[3])
  if count then
    connections = connections + tonumber(count)
    sets[#sets + 1] = ARGV[1] .. inst .. ':m:' .. ARGV[3]
  end
end
if ARGV[4] == '1' then
  local members = {}
  if #sets > 0 then members = redis.call('SUNION', unpack(sets)) end
  return { connections, #members, members }
end
local users = 0
if #sets == 1 then users = redis.call('SCARD', sets[1]) elseif #sets > 1 then users = #redis.call('SUNION', unpack(sets)) end
return { connections, users }
`

const SYNC_SCRIPT = redisScript(SYNC)
const USERS_SCRIPT = redisScript(USERS)
const STREAM_SCRIPT = redisScript(STREAM)
// A full rewrite goes in slices of this many ops, so that no single script holds Redis for long.
const FULL_SLICE = 3000

type Mode = 'full' | 'delta' | 'leave'

/** The key prefix of a deployment's presence, from its topic prefix: what edges write and readers read. */
export function presenceKeyPrefix (topicPrefix: string): string {
  return `${topicPrefix}:presence`
}

function instancesKey (prefix: string): string {
  return `${prefix}instances`
}

/** Runs a script on the instances key within `timeout`; any failure is `FST_NOTIFY_PRESENCE_UNAVAILABLE`. */
async function runWithin (client: RedisPresenceClient, timeout: number, script: RedisScript, instances: string, args: Array<string | number>): Promise<unknown> {
  try {
    return await runScriptWithin(client, timeout, script, [instances], args)
  } catch (err) {
    throw new PresenceUnavailableError((err as Error).message)
  }
}

export interface RedisPresenceReaderOptions extends Pick<RedisPresenceStoreOptions, 'client' | 'keyPrefix' | 'timeout'> {
  /**
   * Instances heard from within this long count, in ms. @default unbounded: each instance's keys
   * expire `ttl` after its last heartbeat on their own, so a reader that does not know the edges'
   * `ttl` (a publisher) still counts live instances only.
   */
  ttl?: number
}

/**
 * The read side of `RedisPresenceStore`, alone: answers for every edge on the Redis without
 * writing a share of its own (a publisher's `app.notify.presence()`).
 */
export class RedisPresenceReader {
  /** `{<keyPrefix>}:` */
  readonly prefix: string
  readonly #client: RedisPresenceClient
  readonly #ttl: number
  readonly #timeout: number

  constructor (opts: RedisPresenceReaderOptions) {
    if (typeof opts?.client?.evalsha !== 'function' || typeof opts.client.eval !== 'function') {
      throw new InvalidOptionError('presence client must be an ioredis client')
    }
    const keyPrefix = opts.keyPrefix ?? presenceKeyPrefix('notify')
    if (typeof keyPrefix !== 'string' || keyPrefix.length === 0) throw new InvalidOptionError('presence keyPrefix must be a non-empty string')
    this.#client = opts.client
    this.#ttl = positiveInteger('presence.ttl', opts.ttl, Number.MAX_SAFE_INTEGER)
    this.#timeout = positiveInteger('presence.timeout', opts.timeout, 1000)
    this.prefix = `{${keyPrefix}}:`
  }

  async users (users: string[]): Promise<UserPresence[]> {
    const shares = await this.#query(USERS_SCRIPT, users) as Array<Array<string | null>>
    return users.map((_, i) => {
      let connections = 0
      const streams = new Set<string>()
      for (const share of shares) {
        const value = share[i]
        if (value === null) continue
        const bar = value.indexOf('|')
        connections += Number(value.slice(0, bar))
        for (const stream of value.slice(bar + 1).split(',')) if (stream !== '') streams.add(stream)
      }
      return { connections, streams: [...streams].sort() }
    })
  }

  async stream (stream: string, members = false): Promise<StreamPresence> {
    const [connections, users, listed] = await this.#query(STREAM_SCRIPT, [stream, members ? '1' : '0']) as [number, number, string[]?]
    return members ? { connections, users, members: (listed ?? []).sort() } : { connections, users }
  }

  #query (script: RedisScript, args: string[]): Promise<unknown> {
    return runWithin(this.#client, this.#timeout, script, instancesKey(this.prefix), [this.prefix, this.#ttl, ...args])
  }
}

// Changes wait this long for more before one script call writes them all. Written once per
// event-loop iteration instead, a stream of handshakes (20 at once) paid a call for nearly every
// connect and subscribe: +22 % CPU per handshake with presence on (docs/benchmarks.md).
const WRITE_WINDOW_MS = 5
// A wider window only delays what other instances see; past a heartbeat it would be no window at all.
const MAX_WRITE_WINDOW_MS = 1000

/**
 * Presence across instances: each instance keeps its share under keys of its own that expire
 * `ttl` after its last heartbeat, and a query sums the shares of the instances heard from within
 * `ttl`. Connection events are coalesced into one script call per `writeWindow`; a Redis that
 * lost the share (restart, expiry after a stall) is rewritten from memory, with no client
 * reconnecting.
 */
export class RedisPresenceStore implements PresenceStore {
  readonly tracker = new PresenceTracker()
  readonly instance = randomUUID()
  readonly #client: RedisPresenceClient
  readonly #instances: string
  readonly #prefix: string
  readonly #base: string
  readonly #ttl: number
  readonly #timeout: number
  readonly #writeWindow: number
  readonly #onError: (err: Error) => void
  readonly #reader: RedisPresenceReader
  /** Public streams and channels this instance holds members of: their keys are refreshed and removed with it. */
  readonly #streams = new Set<string>()
  readonly #heartbeat: NodeJS.Timeout
  // The write waiting for its window to close (see WRITE_WINDOW_MS), if any.
  #pending: NodeJS.Timeout | null = null
  #needsFull = true
  #closed = false
  readonly #writing = new Set<Promise<void>>()

  constructor (opts: RedisPresenceStoreOptions) {
    const heartbeatInterval = positiveInteger('presence.heartbeatInterval', opts.heartbeatInterval, 5000)
    this.#ttl = positiveInteger('presence.ttl', opts.ttl, 20_000)
    if (this.#ttl < 2 * heartbeatInterval) throw new InvalidOptionError('presence.ttl must be at least twice presence.heartbeatInterval')
    this.#timeout = positiveInteger('presence.timeout', opts.timeout, 1000)
    this.#writeWindow = positiveInteger('presence.writeWindow', opts.writeWindow, WRITE_WINDOW_MS)
    if (this.#writeWindow > Math.min(MAX_WRITE_WINDOW_MS, heartbeatInterval)) throw new InvalidOptionError(`presence.writeWindow must be at most ${MAX_WRITE_WINDOW_MS} ms and at most presence.heartbeatInterval`)
    this.#reader = new RedisPresenceReader({ ...opts, ttl: this.#ttl, timeout: this.#timeout })
    this.#client = opts.client
    this.#onError = opts.onError ?? (() => {})
    this.#prefix = this.#reader.prefix
    this.#instances = instancesKey(this.#prefix)
    this.#base = `${this.#prefix}${this.instance}`
    this.tracker.watch(() => this.#schedule())
    this.#heartbeat = setInterval(() => this.#flush(), heartbeatInterval)
    this.#heartbeat.unref()
    this.#schedule()
  }

  users (users: string[]): Promise<UserPresence[]> {
    return this.#reader.users(users)
  }

  stream (stream: string, members?: boolean): Promise<StreamPresence> {
    return this.#reader.stream(stream, members)
  }

  /** Settles once every write issued so far has been answered (or has failed). */
  async flushed (): Promise<void> {
    if (this.#pending !== null) {
      clearTimeout(this.#pending)
      this.#writeNow()
    }
    await Promise.all(this.#writing)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    clearInterval(this.#heartbeat)
    // Sockets closed by the drain are written out first, then the whole share goes.
    await this.flushed()
    this.#closed = true
    try {
      await this.#sync('leave', [])
    } catch (err) {
      this.#onError(err as Error)
    }
  }

  #schedule (): void {
    if (this.#pending !== null || this.#closed) return
    this.#pending = setTimeout(this.#writeNow, this.#writeWindow)
  }

  readonly #writeNow = (): void => {
    this.#pending = null
    this.#flush()
  }

  /** Writes what changed (or, when Redis may have lost the share, all of it). Never rejects. */
  #flush (): void {
    if (this.#closed) return
    // Writes go out in order on the one connection; they need not wait for each other.
    const write = (this.#needsFull ? this.#full() : this.#delta()).catch((err: unknown) => {
      this.#needsFull = true
      this.#onError(err as Error)
    })
    this.#writing.add(write)
    write.finally(() => this.#writing.delete(write))
  }

  async #delta (): Promise<void> {
    const written = await this.#sync('delta', this.#ops(this.tracker.drain()))
    if (written === 0) await this.#full()
  }

  async #full (): Promise<void> {
    this.#needsFull = false
    this.tracker.drain()
    const { users, streams } = this.tracker
    const ops = this.#ops({
      users: new Set(users.keys()),
      streams: new Set(streams.keys()),
      members: new Map([...streams].map(([stream, local]) => [stream, new Set(local.users.keys())]))
    })
    await this.#sync('full', ops.slice(0, FULL_SLICE))
    for (let i = FULL_SLICE; i < ops.length; i += FULL_SLICE) await this.#sync('delta', ops.slice(i, i + FULL_SLICE))
  }

  /** Each changed key's local truth as (op, a, b) triples. */
  #ops ({ users, streams, members }: PresenceChanges): string[] {
    const ops: string[] = []
    for (const user of users) {
      const local = this.tracker.users.get(user)
      ops.push('u', user, local === undefined ? '' : `${local.connections}|${userStreams(local).join(',')}`)
    }
    for (const stream of streams) {
      const local = this.tracker.streams.get(stream)
      // A stream no local socket holds any more leaves the list its keys are refreshed by: its
      // ops below empty its keys, and channels (a key each) would otherwise grow it for ever.
      if (local === undefined) this.#streams.delete(stream)
      else this.#streams.add(stream)
      ops.push('s', stream, String(local?.connections ?? 0))
    }
    for (const [stream, changed] of members) {
      const local = this.tracker.streams.get(stream)?.users
      for (const user of changed) ops.push(local?.has(user) === true ? 'a' : 'r', stream, user)
    }
    return ops
  }

  #sync (mode: Mode, ops: string[]): Promise<unknown> {
    return this.#run(SYNC_SCRIPT, [this.#base, this.instance, this.#ttl, mode, this.#streams.size, ...this.#streams, ...ops])
  }

  #run (script: RedisScript, args: Array<string | number>): Promise<unknown> {
    return runWithin(this.#client, this.#timeout, script, this.#instances, args)
  }
}
