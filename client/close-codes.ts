import { backoffDelay, drainDelay, penaltyDelay, type BackoffOptions } from './backoff.js'

/** Close codes the client acts on (SPEC section 4). */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** No close frame: network drop, refused handshake (401/403), dead server. */
  ABNORMAL: 1006,
  POLICY: 1008,
  TOO_BIG: 1009,
  EXPIRED: 4001,
  FORBIDDEN: 4003,
  /** Sent by this client when it gives up on a silent server. */
  CLIENT_TIMEOUT: 4000
} as const

/**
 * How long to wait before reconnecting after `code`, or null to stay closed.
 * - 4003 (forbidden/revoked) and 1009 (frame too big: the same frames would be resent) are terminal.
 * - 1008 (policy) waits between `max/2` and `max`, so a misbehaving client backs right off.
 * - 1001 (drain) first waits a time spread over the drain window (`backoff.drain`).
 * - Everything else (1001, 1011, 1013, 4001, 1006…) uses jittered exponential backoff; every
 *   reconnect asks for a fresh ticket, which is all 4001 needs.
 */
export function retryDelay (code: number, attempt: number, backoff: BackoffOptions, random?: () => number): number | null {
  if (code === CLOSE.FORBIDDEN || code === CLOSE.TOO_BIG) return null
  if (code === CLOSE.POLICY) return penaltyDelay(backoff, random)
  if (code === CLOSE.GOING_AWAY && attempt === 0) return drainDelay(backoff, random)
  return backoffDelay(attempt, backoff, random)
}

/**
 * The wait a refused handshake's `Retry-After` (seconds) asks for, jittered up to half again so
 * that the clients an instance turned away do not all come back at once; null when absent or
 * unreadable (an HTTP date is not honoured: clocks differ).
 */
export function retryAfterDelay (header: unknown, random: () => number = Math.random): number | null {
  const seconds = typeof header === 'string' && /^[0-9]{1,6}$/.test(header.trim()) ? Number(header) : NaN
  if (!Number.isFinite(seconds)) return null
  return Math.round(seconds * 1000 * (1 + random() / 2))
}
