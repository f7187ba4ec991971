import { InvalidOptionError } from '../errors.js'
import { positiveInteger } from '../util.js'
import type { RouteStats } from '../recorder.js'

/** How many frames a client may send: a token bucket per connection. */
export interface FrameRateOptions {
  /** Frames per second, refilled continuously. @default 20 */
  perSecond?: number
  /** Frames that may arrive at once. @default 40 */
  burst?: number
}

/** What happens to messages for a socket whose outbound buffer is over `maxBufferedBytes`. */
export type SlowConsumerPolicy = 'close' | 'drop'

export interface LimitOptions {
  /**
   * Bytes a socket may have queued for the client before it counts as a slow consumer.
   * @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number
  /**
   * `close`: close the socket with 1013; `drop`: drop its messages (and count them) until it has
   * drained, then replay them from history in order, or send `gap` for a stream without history.
   * @default 'close'
   */
  slowConsumer?: SlowConsumerPolicy
  /**
   * Inbound frame rate; a frame over it is answered with `RATE_LIMITED` and not handled. A client
   * that keeps sending while limited is closed with 1008 once its debt reaches `burst`.
   * `false` turns the limit off. @default { perSecond: 20, burst: 40 }
   */
  frameRate?: FrameRateOptions | false
  /** Frames that fail to parse (`BAD_REQUEST`, `UNKNOWN_EVENT`) before the socket is closed with 1008. @default 10 */
  maxBadFrames?: number
  /** Sockets one user may hold on this route; over it the handshake answers 429. @default unlimited */
  maxConnectionsPerUser?: number
}

export interface RouteLimits {
  maxBufferedBytes: number
  slowConsumer: SlowConsumerPolicy
  frameRate: Required<FrameRateOptions> | null
  maxBadFrames: number
  maxConnectionsPerUser: number
}

export function resolveLimits (opts: LimitOptions): RouteLimits {
  const slowConsumer = opts.slowConsumer ?? 'close'
  if (slowConsumer !== 'close' && slowConsumer !== 'drop') {
    throw new InvalidOptionError(`slowConsumer must be 'close' or 'drop', got ${String(slowConsumer)}`)
  }
  let frameRate: RouteLimits['frameRate'] = null
  if (opts.frameRate !== false) {
    const rate = opts.frameRate ?? {}
    if (rate === null || typeof rate !== 'object') throw new InvalidOptionError('frameRate must be an object or false')
    frameRate = {
      perSecond: positiveInteger('frameRate.perSecond', rate.perSecond, 20),
      burst: positiveInteger('frameRate.burst', rate.burst, 40)
    }
  }
  return {
    maxBufferedBytes: positiveInteger('maxBufferedBytes', opts.maxBufferedBytes, 1024 * 1024),
    slowConsumer,
    frameRate,
    maxBadFrames: positiveInteger('maxBadFrames', opts.maxBadFrames, 10),
    maxConnectionsPerUser: positiveInteger('maxConnectionsPerUser', opts.maxConnectionsPerUser, Infinity)
  }
}

/** What `admission()` says of a frame. */
export const Admission = { OK: 0, LIMITED: 1, ABUSE: 2 } as const
export type AdmissionResult = typeof Admission[keyof typeof Admission]

/**
 * A connection's inbound frame rate: a token bucket of `burst` tokens refilled at `perSecond`, kept
 * as one number per connection (the generic cell rate algorithm), `due`: when the bucket would be
 * full again, in tokens' time (1/perSecond s), each frame pushing it one token later. Tokens left =
 * burst − (due − now). A rejected frame still costs a token, so a client that keeps sending while
 * limited digs a debt; at a debt of `burst` it is an abuser. One that pauses long enough refills
 * and is welcome again. `due` is an integer, as a double would be boxed per connection: a full
 * bucket restarts from the current token, credit of under one token that never lets more than
 * `burst` frames through at once. `frameDue` moves `due` on; `admission` judges the frame by it.
 */
export function frameDue (due: number, rate: Required<FrameRateOptions>, now: number): number {
  return Math.max(due, Math.floor(now * rate.perSecond / 1000)) + 1
}

export function admission (due: number, rate: Required<FrameRateOptions>, now: number): AdmissionResult {
  const tokens = rate.burst - (due - now * rate.perSecond / 1000)
  if (tokens >= 0) return Admission.OK
  return tokens > -rate.burst ? Admission.LIMITED : Admission.ABUSE
}

/** Open sockets per user on one route, for `maxConnectionsPerUser`; counts nothing without a limit. */
export class UserConnections {
  readonly #counts = new Map<string, number>()

  constructor (readonly max: number) {}

  count (user: string | null): number {
    return user === null ? 0 : this.#counts.get(user) ?? 0
  }

  full (user: string | null): boolean {
    return this.count(user) >= this.max
  }

  add (user: string | null): void {
    if (user !== null && this.max !== Infinity) this.#counts.set(user, (this.#counts.get(user) ?? 0) + 1)
  }

  delete (user: string | null): void {
    if (user === null || this.max === Infinity) return
    const count = (this.#counts.get(user) ?? 1) - 1
    if (count > 0) this.#counts.set(user, count)
    else this.#counts.delete(user)
  }
}

/** The closable part of a socket, as the slow-consumer policy sees it. */
export interface Closable {
  readonly socket: { readonly readyState: number }
  close (code: number, reason: string): void
}

const OPEN = 1
export const SLOW_CONSUMER_CLOSE = 1013

/** What to do with one message that a socket over its buffer limit should have received. */
export function slowConsumerPolicy (policy: SlowConsumerPolicy, stats: RouteStats): (connection: Closable) => void {
  if (policy === 'drop') return () => { stats.dropped++ }
  return (connection) => {
    stats.dropped++
    if (connection.socket.readyState !== OPEN) return
    stats.slowConsumerCloses++
    connection.close(SLOW_CONSUMER_CLOSE, 'slow consumer')
  }
}
