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

/** Runs `start(callback)`: true when the callback fires within `ms`, false when it does not. */
export async function withTimeout (ms: number, start: (callback: (err?: Error | null) => void) => void): Promise<boolean> {
  const done = new Promise<void>((resolve, reject) => start((err) => err ? reject(err) : resolve()))
  return (await within(ms, done)) !== null
}
