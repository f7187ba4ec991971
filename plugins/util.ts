import { InvalidOptionError } from './errors.js'

// Small helpers shared by the plugins; not exported from the package entry.

export function positiveInteger (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

/** An integer option in [min, max], or `fallback` when not given. */
export function integerBetween (name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

/**
 * Waits for `work` at most `ms`: `{ value }` when it settles in time, null when it does not; a
 * rejection in time rejects. The timer stays ref'd: someone awaits the result, and an unref'd
 * timer would let the process exit under them (e.g. in `app.close()`) instead of reporting it.
 */
export async function within<T> (ms: number, work: Promise<T>): Promise<{ value: T } | null> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<null>((resolve) => { timer = setTimeout(resolve, ms, null) })
  try {
    return await Promise.race([work.then((value) => ({ value })), late])
  } finally {
    clearTimeout(timer)
  }
}

interface Pending {
  readonly at: number
  /** Null once settled, so that a settled call's promise and resolver are not kept by the queue. */
  expire: (() => void) | null
}

/**
 * `within` for a hot path with one fixed `ms`: calls expire in the order they started, so one
 * timer (for the oldest pending call) serves them all, where `within` costs a timer and a race
 * per call (about 5 µs, measured: a fifth of a bus publish at 5,000 msg/s).
 */
export class Deadlines {
  readonly #ms: number
  readonly #queue: Pending[] = []
  #head = 0
  #pending = 0
  #timer: NodeJS.Timeout | undefined

  constructor (ms: number) {
    this.#ms = ms
  }

  /** As `within(ms, work)`. */
  race<T> (work: Promise<T>): Promise<{ value: T } | null> {
    return new Promise((resolve, reject) => {
      const entry: Pending = { at: performance.now() + this.#ms, expire: () => resolve(null) }
      this.#queue.push(entry)
      // Ref'd, as `within`'s, while someone awaits an answer. A timer left from an earlier batch
      // is kept (it re-arms for the head when it fires early): clearing and setting one each time
      // the pending count touched zero, once a turn under load, made a race 20 % dearer (0.6 µs
      // against 0.5 µs, five calls a turn, in a micro-benchmark).
      if (++this.#pending === 1) {
        if (this.#timer === undefined) this.#timer = setTimeout(this.#expire, this.#ms)
        else this.#timer.ref()
      }
      work.then((value) => {
        if (this.#settle(entry)) resolve({ value })
      }, (err: unknown) => {
        if (this.#settle(entry)) reject(err)
      })
    })
  }

  #settle (entry: Pending): boolean {
    if (entry.expire === null) return false
    entry.expire = null
    // Nothing left to wait for: no timer may keep the process alive past the work.
    if (--this.#pending === 0) this.#reset()
    else this.#dropSettled()
    return true
  }

  /**
   * Moves the head past settled calls (they settle mostly in order), and drops them once they are
   * most of the queue. Under steady load the pending count may never touch zero, and the queue
   * would otherwise grow until the timer fired: up to `ms` of calls, old enough for the GC to
   * promote.
   */
  #dropSettled (): void {
    const queue = this.#queue
    while (this.#head < queue.length && queue[this.#head].expire === null) this.#head++
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      queue.splice(0, this.#head)
      this.#head = 0
    }
  }

  /** Nothing pending: the queue empties, and the timer, if armed, keeps no process alive. */
  #reset (): void {
    this.#timer?.unref()
    this.#queue.length = 0
    this.#head = 0
  }

  readonly #expire = (): void => {
    this.#timer = undefined
    if (this.#pending === 0) return
    const now = performance.now()
    const queue = this.#queue
    while (this.#head < queue.length && (queue[this.#head].expire === null || queue[this.#head].at <= now)) {
      const entry = queue[this.#head++]
      const { expire } = entry
      entry.expire = null
      if (expire !== null) {
        this.#pending--
        expire()
      }
    }
    if (this.#pending === 0) return this.#reset()
    this.#dropSettled()
    this.#timer = setTimeout(this.#expire, Math.max(1, queue[this.#head].at - now))
  }
}

/** Runs `start(callback)`: true when the callback fires within `ms`, false when it does not. */
export async function withTimeout (ms: number, start: (callback: (err?: Error | null) => void) => void): Promise<boolean> {
  const done = new Promise<void>((resolve, reject) => start((err) => err ? reject(err) : resolve()))
  return (await within(ms, done)) !== null
}

/**
 * One frozen array of `values` per `key` in `cache`, shared by everyone who asks: for arrays that
 * are replaced, never changed, and that many holders would otherwise each keep a copy of. The
 * caller bounds the keys.
 */
export function sharedArray (cache: Map<string, readonly string[]>, key: string, ...values: string[]): readonly string[] {
  let shared = cache.get(key)
  if (shared === undefined) {
    shared = Object.freeze(values)
    cache.set(key, shared)
  }
  return shared
}
