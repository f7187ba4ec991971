// The caller's identity on a request a dedicated edge makes to a backend (an RPC, a hook): a
// short-lived HS256 JWT in `x-notify-caller`, signed with a secret the edge and the backend share,
// so a backend trusts who is calling without trusting the network. Any JWT library verifies it.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidOptionError } from '../errors.js'
import { NO_CLAIMS, type Principal } from '../principal.js'

export const CALLER_HEADER = 'x-notify-caller'
const AUDIENCE = 'notify-edge-backend'
const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
const MIN_SECRET_LENGTH = 32

export function callerSecretOption (secret: unknown): string {
  if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) {
    throw new InvalidOptionError(`callerSecret must be a string of at least ${MIN_SECRET_LENGTH} characters`)
  }
  return secret
}

function signature (secret: string, input: string): string {
  return createHmac('sha256', secret).update(input).digest('base64url')
}

/** A token naming `principal.user` (null: anonymous), valid `ttl` seconds from `now` (ms). */
export function signCallerToken (secret: string, principal: Principal, ttl: number, now = Date.now()): string {
  const iat = Math.floor(now / 1000)
  const payload = Buffer.from(JSON.stringify({ sub: principal.user, aud: AUDIENCE, iat, exp: iat + ttl })).toString('base64url')
  const input = `${HEADER}.${payload}`
  return `${input}.${signature(secret, input)}`
}

/** The principal a valid, unexpired token names; null for anything else. */
export function verifyCallerToken (secret: string, token: unknown, now = Date.now()): Principal | null {
  if (typeof token !== 'string' || token.length > 2048) return null
  const parts = token.split('.')
  if (parts.length !== 3 || parts[0] !== HEADER) return null
  const expected = Buffer.from(signature(secret, `${parts[0]}.${parts[1]}`))
  const given = Buffer.from(parts[2])
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  let claims: Record<string, unknown>
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'))
  } catch {
    return null
  }
  const { sub, aud, exp } = claims
  if (aud !== AUDIENCE || typeof exp !== 'number' || exp * 1000 <= now) return null
  if (sub !== null && typeof sub !== 'string') return null
  return { user: sub, expiresAt: exp * 1000, claims: NO_CLAIMS }
}
