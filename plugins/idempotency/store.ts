import type { PublishResult } from '../notify.js'

/** What an idempotency key holds: a publish under way, or the answer of the one that finished. */
export type IdempotencyEntry = { state: 'pending' } | { state: 'done', result: PublishResult }

/**
 * Where idempotency keys live. The Redis store shares them across instances; the memory store
 * serves one process. `token` tells this claim from a later one once a pending marker expired.
 */
export interface IdempotencyStore {
  /** Takes `key` with a pending marker for `pendingTtl` seconds: null when taken, else what it holds. */
  claim (key: string, token: string, pendingTtl: number): Promise<IdempotencyEntry | null>
  /** Replaces the marker with the publish's answer, kept `ttl` seconds. */
  complete (key: string, result: PublishResult, ttl: number): Promise<void>
  /** Frees a key still held by this claim's pending marker, so that a retry publishes. */
  release (key: string, token: string): Promise<void>
  /**
   * Gives a key still held by this claim's pending marker `pendingTtl` more seconds: a publish
   * whose outcome is not known yet keeps its key while the answer may still come.
   */
  extend (key: string, token: string, pendingTtl: number): Promise<void>
}
