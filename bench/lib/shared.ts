import { createHmac, timingSafeEqual } from 'node:crypto'

// What every contender and the load generator agree on.

export const SECRET = 'notify-edge-benchmark-secret-not-for-production'
export const PUBLIC_STREAM = 'promotional'
export const PRIVATE_STREAM = 'reward'
export const NOTIFICATION_BYTES = 100

/** Microseconds on the system-wide monotonic clock: comparable across processes on one machine. */
export function nowUs (): number {
  return Number(process.hrtime.bigint()) / 1000
}

export interface Notification { seq: number, t: number, text: string }

/** A notification whose JSON is exactly 100 bytes; `t` is when it was published (nowUs). */
export function notification (seq: number, t: number = nowUs()): Notification {
  const bare = JSON.stringify({ seq, t, text: '' }).length
  return { seq, t, text: 'x'.repeat(NOTIFICATION_BYTES - bare) }
}

export function userName (index: number): string {
  return `user${index}`
}

function base64url (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

const HEADER = base64url({ alg: 'HS256', typ: 'JWT' })

/** An HS256 JWT for `sub`, valid for an hour. */
export function signToken (sub: string): string {
  const now = Math.floor(Date.now() / 1000)
  const body = `${HEADER}.${base64url({ sub, iat: now, exp: now + 3600 })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

/** The `sub` of a valid, unexpired HS256 JWT, or null; what the plain contenders use for auth. */
export function verifyToken (token: string): string | null {
  const parts = token.split('.')
  if (parts.length !== 3 || parts[0] !== HEADER) return null
  const expected = createHmac('sha256', SECRET).update(`${parts[0]}.${parts[1]}`).digest()
  const given = Buffer.from(parts[2], 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
    if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return null
    return claims.sub
  } catch {
    return null
  }
}

/** The key every contender's `POST /notifications` (and the edge's gRPC ingress) wants in `x-api-key`. */
export const API_KEY = 'notify-edge-benchmark-api-key'
