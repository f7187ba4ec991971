/** Reconnect delays, in ms. */
export interface BackoffOptions {
  /** The shortest wait before a reconnect. @default 500 */
  min: number
  /** The longest wait before a reconnect. @default 20000 */
  max: number
  /**
   * After a 1001 (the server drains), the first wait is uniform between `min` and this, in ms:
   * the clients of a stopping instance spread their reconnects (and resumes) over the window
   * the server spreads its closes over. @default 3000
   */
  drain?: number
}

/** The first wait after a 1001: uniform over the drain window. */
export function drainDelay ({ min, drain = 3000 }: BackoffOptions, random: () => number = Math.random): number {
  return Math.round(min + random() * Math.max(0, drain - min))
}

/**
 * The wait before reconnect number `attempt` (0 for the first): exponential with full jitter,
 * uniform between `min` and a ceiling that doubles with each attempt (`2·min`, `4·min`, …) up to
 * `max`. Even the first wait is jittered, so that the clients of a draining server spread out.
 */
export function backoffDelay (attempt: number, { min, max }: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(max, min * 2 ** (attempt + 1))
  return Math.round(min + random() * (ceiling - min))
}

/** The wait after a policy close (1008): never sooner than half of `max`. */
export function penaltyDelay ({ max }: BackoffOptions, random: () => number = Math.random): number {
  return Math.round(max / 2 + random() * (max / 2))
}
