import { InvalidOptionError } from './errors.js'

// Small helpers shared by the plugins; not exported from the package entry.

export function positiveInteger (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

/**
 * Runs `start(callback)` and settles when the callback fires or `ms` pass, whichever is first.
 * The timer stays ref'd: someone awaits the result, and an unref'd timer would let the process
 * exit under them (e.g. in `app.close()`) instead of reporting the timeout.
 */
export function withTimeout (ms: number, start: (callback: (err?: Error | null) => void) => void): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(false), ms)
    start((err) => {
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(true)
    })
  })
}
