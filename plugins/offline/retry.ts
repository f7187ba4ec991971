// When to try a delivery again: the push service or SMTP server said "later" (429, 5xx, 4xx SMTP),
// within the message's TTL and a number of attempts.
import { positiveInteger } from '../util.js'

export interface OfflineRetryOptions {
  /** Attempts per push (per subscription) or e-mail, the first included. @default 5 */
  attempts?: number
  /** First backoff, in ms, doubled each attempt (with jitter) unless `Retry-After` says otherwise. @default 1000 */
  baseDelay?: number
  /** Longest backoff, in ms. @default 60000 */
  maxDelay?: number
}

export interface RetryPolicy {
  readonly attempts: number
  readonly baseDelay: number
  readonly maxDelay: number
}

export function retryPolicy (opts: OfflineRetryOptions = {}): RetryPolicy {
  return {
    attempts: positiveInteger('retry.attempts', opts.attempts, 5),
    baseDelay: positiveInteger('retry.baseDelay', opts.baseDelay, 1000),
    maxDelay: positiveInteger('retry.maxDelay', opts.maxDelay, 60_000)
  }
}

/** A sender's verdict on one attempt. */
export type Attempt =
  | { outcome: 'sent' }
  /** The subscription no longer exists (404, 410): remove it. */
  | { outcome: 'gone' }
  /** Try again; `after` in ms when the other end said when (Retry-After). */
  | { outcome: 'retry', after: number | null, reason: string }
  | { outcome: 'failed', reason: string }

/**
 * The wait before attempt `attempt + 1`, or null to give up: out of attempts, or the wait would
 * end after `expiresAt` (the message's TTL), when the copy is not worth sending any more.
 */
export function nextDelay (policy: RetryPolicy, attempt: number, after: number | null, expiresAt: number, now = Date.now()): number | null {
  if (attempt >= policy.attempts) return null
  const backoff = Math.min(policy.maxDelay, policy.baseDelay * 2 ** (attempt - 1))
  // Full jitter on our own backoff; a Retry-After is honoured as given.
  const delay = after ?? Math.round(backoff / 2 + Math.random() * backoff / 2)
  return now + delay >= expiresAt ? null : delay
}

/** `Retry-After` (seconds or an HTTP date) in ms, or null when absent or unreadable. */
export function retryAfter (value: unknown, now = Date.now()): number | null {
  if (typeof value !== 'string' || value.trim() === '') return null
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}
