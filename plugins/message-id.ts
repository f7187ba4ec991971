/**
 * Message ids shaped like Redis Stream ids (`<ms>-<seq>`), increasing within this process, so
 * they compare the same way whether they come from here or from a Redis Stream.
 */
export class MessageIdGenerator {
  #lastMs = 0
  #seq = 0

  constructor (private readonly now: () => number = Date.now) {}

  next (): { id: string, ts: number } {
    const now = this.now()
    if (now > this.#lastMs) {
      this.#lastMs = now
      this.#seq = 0
    } else {
      this.#seq++
    }
    return { id: `${this.#lastMs}-${this.#seq}`, ts: now }
  }
}

/**
 * The position of a stream with history that has no message yet (the `positions` of a
 * `subscribed` frame): below every id, and as a `since` it resumes from the topic's start.
 */
export const EMPTY_POSITION = '0-0'

// Both parts are unsigned 64-bit integers in Redis, written without leading zeros.
const MESSAGE_ID = /^(0|[1-9]\d{0,19})-(0|[1-9]\d{0,19})$/
const MAX_PART = '18446744073709551615'

/** Whether a client-supplied value is a message id (Redis would accept it as a stream id). */
export function isMessageId (value: unknown): value is string {
  if (typeof value !== 'string') return false
  const parts = MESSAGE_ID.exec(value)
  return parts !== null && compareDigits(parts[1], MAX_PART) <= 0 && compareDigits(parts[2], MAX_PART) <= 0
}

function compareDigits (a: string, b: string): number {
  // Same-length digit strings without leading zeros compare as numbers do.
  if (a.length !== b.length) return a.length - b.length
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * Orders two well-formed message ids (see `isMessageId`): negative when `a` came first, 0 when
 * equal, positive when `a` came later. Exact for the full 64-bit range, unlike `Number`.
 */
export function compareMessageIds (a: string, b: string): number {
  const dashA = a.indexOf('-')
  const dashB = b.indexOf('-')
  return compareDigits(a.slice(0, dashA), b.slice(0, dashB)) || compareDigits(a.slice(dashA + 1), b.slice(dashB + 1))
}
