import { createHash, timingSafeEqual } from 'node:crypto'
import { InvalidOptionError } from './errors.js'

// The shared-key check of every service-facing ingress (HTTP `x-api-key`, gRPC metadata).

export const MIN_KEY_LENGTH = 16

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Validates `apiKey` (a key, or several while rotating) and returns a constant-time matcher. */
export function apiKeyMatcher (apiKey: unknown): (given: unknown) => boolean {
  const keys = Array.isArray(apiKey) ? apiKey : [apiKey]
  if (keys.length === 0 || !keys.every((key) => typeof key === 'string' && key.length >= MIN_KEY_LENGTH)) {
    throw new InvalidOptionError(`apiKey must be a string of at least ${MIN_KEY_LENGTH} characters, or an array of them`)
  }
  // Comparing fixed-length digests keeps the compare constant-time whatever the key's length.
  const digests = (keys as string[]).map(digest)
  return (given) => {
    if (typeof given !== 'string') return false
    const candidate = digest(given)
    let match = false
    for (const key of digests) match = timingSafeEqual(candidate, key) || match
    return match
  }
}
