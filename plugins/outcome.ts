import { OutcomeUnknownError } from './errors.js'

// A write that was sent but not answered in time still runs in Redis: "unknown" is its own
// answer (FST_NOTIFY_OUTCOME_UNKNOWN), and the error carries the write's late outcome so that
// the idempotency layer can hold the key until it is known and record the real answer then.

/** An `OutcomeUnknownError` with the promise of the write it gave up waiting for. */
export interface UnknownOutcome extends Error {
  readonly code: 'FST_NOTIFY_OUTCOME_UNKNOWN'
  readonly statusCode: 503
  /** Settles when Redis answers after all: the result, or a rejection (its fate stays unknown). */
  late: Promise<unknown>
}

/** Nobody need wait for a late outcome: a rejection nobody awaits must not crash the process. */
function quiet<T> (late: Promise<T>): Promise<T> {
  late.catch(() => {})
  return late
}

export function outcomeUnknown (reason: string, late: Promise<unknown>): UnknownOutcome {
  const err = new OutcomeUnknownError(reason) as unknown as UnknownOutcome
  err.late = quiet(late)
  return err
}

export function isOutcomeUnknown (err: unknown): err is UnknownOutcome {
  return (err as { code?: unknown } | null)?.code === 'FST_NOTIFY_OUTCOME_UNKNOWN' && (err as { late?: unknown }).late instanceof Promise
}

/** Rethrows `err`; an unknown outcome's late result first goes through `map`. */
export function mapLate<T, U> (err: unknown, map: (value: T) => U): never {
  if (isOutcomeUnknown(err)) err.late = quiet(err.late.then((value) => map(value as T)))
  throw err
}

/**
 * Whether a failed Redis command may still have run. A reply error was Redis refusing it, and a
 * command a disconnected client never sent (no offline queue) did not run; anything else (a
 * connection lost with the command in flight) may have.
 */
export function mayHaveRun (err: unknown): boolean {
  const { name, message } = err as { name?: string, message?: string }
  if (name === 'ReplyError') return false
  return !/enableOfflineQueue|isn't writeable|not connected/i.test(message ?? '')
}

/**
 * Settles as `Promise.all(works)`, except that when some were left unknown and none failed
 * outright, it throws one unknown outcome whose late result is all of theirs.
 */
export async function allOrUnknown<T> (works: Array<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(works)
  const failed = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected')
  if (failed.length === 0) return settled.map((s) => (s as PromiseFulfilledResult<T>).value)
  const definite = failed.find((s) => !isOutcomeUnknown(s.reason))
  if (definite !== undefined) throw definite.reason
  throw outcomeUnknown((failed[0].reason as Error).message, Promise.all(settled.map((s) =>
    s.status === 'fulfilled' ? s.value : (s.reason as UnknownOutcome).late)))
}
