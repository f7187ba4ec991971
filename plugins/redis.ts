import type { EventEmitter } from 'node:events'
import { Redis, type RedisOptions } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { within } from './util.js'

// The seam between our code and two ioredis majors: mqemitter-redis and we use ioredis 5,
// @fastify/redis uses ioredis 6, and their types do not mix. Everything here is typed by what
// we call, so a client of either version fits. Not exported from the package entry except types.

/** The socket under an ioredis connection, as far as the edge touches it. */
interface RedisStream { destroy (): void, cork?: () => void, uncork?: () => void, writableCorked?: number, writableLength?: number }

/** The calls the edge makes on a Redis connection it manages. */
export interface RedisConnectionLike {
  /** ioredis status: 'wait', 'connecting', 'connect', 'ready', 'reconnecting', 'close', 'end'. */
  readonly status: string
  readonly stream?: RedisStream
  quit (): Promise<unknown>
  disconnect (): void
  once (event: string, listener: (...args: unknown[]) => void): unknown
  on (event: string, listener: (...args: unknown[]) => void): unknown
  removeListener (event: string, listener: (...args: unknown[]) => void): unknown
}

/** Options the edge sets on connections it derives. */
export interface RedisConnectionOverrides {
  lazyConnect?: boolean
  enableOfflineQueue?: boolean
  autoResendUnfulfilledCommands?: boolean
  enableAutoPipelining?: boolean
  maxRetriesPerRequest?: number | null
  commandTimeout?: number
}

/** A client to derive connections from with `duplicate()`, e.g. `app.redis` of @fastify/redis. */
export interface RedisClientLike {
  duplicate (override?: RedisConnectionOverrides): RedisConnectionLike
}

/**
 * A URL (`redis://`, `rediss://` for TLS), or ioredis options with an optional `url`; with
 * `sentinels` and `name`, the master that Sentinel names, followed across failovers.
 */
export type RedisConnectionOptions = string | (RedisOptions & { url?: string })

function validPort (port: unknown): boolean {
  return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536
}

/** Throws a coded error unless `sentinels` is a non-empty list of `{ host, port }` and `name` a master name. */
function checkSentinels (sentinels: unknown, name: unknown): void {
  if (!Array.isArray(sentinels) || sentinels.length === 0) {
    throw new InvalidOptionError('redis.sentinels must be a non-empty array of { host, port }')
  }
  for (const sentinel of sentinels as Array<{ host?: unknown, port?: unknown }>) {
    if (sentinel === null || typeof sentinel !== 'object' || (sentinel.host !== undefined && typeof sentinel.host !== 'string') || !validPort(sentinel.port)) {
      throw new InvalidOptionError(`redis.sentinels: ${JSON.stringify(sentinel)} is not { host, port }`)
    }
  }
  if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionError('redis.name (the master Sentinel monitors) is required with sentinels')
}

/** A new ioredis connection; `overrides` win over `options`. */
export function redisConnection (options: RedisConnectionOptions, overrides: RedisConnectionOverrides): Redis {
  if (typeof options === 'string') return new Redis(options, overrides)
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('redis must be a URL, ioredis options or { client }')
  }
  if (options.sentinels !== undefined) checkSentinels(options.sentinels, options.name)
  const { url, ...rest } = options
  if (url === undefined) return new Redis({ ...rest, ...overrides })
  return new Redis(url, { ...rest, ...overrides })
}

// Past this much held, a batch goes without waiting for the rest of the interval: it gains no more.
const MAX_HELD_BYTES = 64 * 1024

/**
 * Holds a connection's writes to send them in one syscall: commands issued together (a burst of
 * publishes) cost one write, and Redis answers them in one. Those of one tick always go out
 * together at its end. With an `interval` (ms), commands issued less than `interval` after the
 * last write are held until that much has passed, so that a steady stream of publishes (one per
 * turn, as HTTP, gRPC and AMQP deliver them) leaves in a write per interval instead of one per
 * turn, and arrives at every receiving instance in one read too. After a quiet interval a command
 * goes at the end of its tick: a lone publish waits for no timer. Unlike ioredis's
 * auto-pipelining it never waits for a reply, so it never holds a later batch behind an earlier one.
 */
export class WriteCoalescer {
  #lastFlush = -Infinity
  #held: RedisStream | null = null
  #timer: NodeJS.Timeout | undefined
  readonly #flush = (): void => { this.flush() }

  constructor (readonly connection: object, readonly interval: number) {}

  /** Holds what is written to the connection from now on, until its flush is due. */
  hold (): void {
    // A Cluster client has no single stream: its commands go out as before.
    const stream = (this.connection as { stream?: RedisStream }).stream
    if (stream?.cork === undefined) return
    if (stream.writableCorked !== 0) {
      if (stream !== this.#held || stream.writableLength! < MAX_HELD_BYTES) return
      this.flush()
    } else if (this.#held !== null) {
      // A reconnect replaced the stream: the old one goes, and the new one has not been written.
      this.flush()
      this.#lastFlush = -Infinity
    }
    stream.cork()
    this.#held = stream
    const wait = this.#lastFlush + this.interval - performance.now()
    if (wait <= 0) process.nextTick(this.#flush)
    else this.#timer = setTimeout(this.#flush, wait)
  }

  /** Sends what is held now (also before a QUIT, so that closing waits for no timer). */
  flush (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const stream = this.#held
    if (stream === null) return
    this.#held = null
    this.#lastFlush = performance.now()
    stream.uncork!()
  }
}

/**
 * Calls `callback` once a (un)subscribe `command` is answered, as an MQEmitter's `on` and
 * `removeListener` do either way; a failure goes first to `state`'s 'error', where
 * mqemitter-redis reports it.
 */
export function afterSubscription (command: Promise<unknown>, state: EventEmitter, callback?: () => void): void {
  command.then(() => callback?.(), (err: unknown) => {
    state.emit('error', err)
    callback?.()
  })
}

/** Resolves once `connection` is ready. */
export function connectionReady (connection: RedisConnectionLike): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => connection.once('ready', () => resolve()))
}

/**
 * Ends a connection within `timeout` ms and never throws: QUIT when connected, else (or when
 * QUIT gets no answer) disconnect at once, since waiting for 'end' could then take forever.
 */
export async function endConnection (connection: RedisConnectionLike, timeout: number): Promise<void> {
  if (connection.status === 'end') return
  if (connection.status === 'ready') {
    const ended = new Promise<void>((resolve) => connection.once('end', () => resolve()))
    connection.quit().catch(() => {})
    if (await within(timeout, ended) !== null) return
  }
  // disconnect() alone only half-closes the socket, which a frozen Redis never completes.
  connection.disconnect()
  connection.stream?.destroy()
}

/**
 * Logs a connection's outages once each (without an 'error' listener ioredis prints every failed
 * reconnect to stderr) and their end; `onReady` runs on every 'ready', the first included.
 */
export function watchOutages (connection: RedisConnectionLike, log: FastifyBaseLogger, what: string, onReady: () => void = () => {}): void {
  let outage = false
  connection.on('error', (err) => {
    if (outage) return
    outage = true
    log.warn({ err }, `${what}: Redis connection lost`)
  })
  connection.on('ready', () => {
    if (outage) log.info(`${what}: Redis connection restored`)
    outage = false
    onReady()
  })
}
