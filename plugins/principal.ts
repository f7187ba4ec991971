import type { FastifyInstance } from 'fastify'
import type {} from '@fastify/jwt'
import { UnauthorizedError } from './errors.js'
import { userIdProblem } from './topics.js'

/** Who is on the other end of a connection. */
export interface Principal {
  /** The JWT's `sub`; null on an anonymous connection. */
  user: string | null
  /** When the credential expires, in ms since the epoch; null when it never does. */
  expiresAt: number | null
  /** The verified JWT claims; empty when anonymous or authenticated by ticket. */
  claims: Readonly<Record<string, unknown>>
}

/** The claims of a principal that has none (anonymous, or authenticated by ticket): one object for all. */
export const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({})

export const ANONYMOUS: Principal = Object.freeze({ user: null, expiresAt: null, claims: NO_CLAIMS })

/**
 * Verifies a JWT with the app's `@fastify/jwt` and turns it into a principal. A token needs a
 * usable `sub` and an `exp`: a connection must know when it expires. Asynchronous because a key
 * may have to be fetched (JWKS: a key id not seen yet).
 */
export function principalFromJwt (app: FastifyInstance, token: string): Promise<Principal> {
  // Not an async function: a handshake verifies once or twice, and each async frame is allocation.
  let claims: Record<string, unknown> | Promise<Record<string, unknown>>
  try {
    // A promise when @fastify/jwt's key is a function (JWKS), the claims otherwise.
    claims = app.jwt.verify<Record<string, unknown>>(token) as Record<string, unknown> | Promise<Record<string, unknown>>
  } catch (err) {
    return Promise.reject(invalidToken(err))
  }
  if (typeof (claims as Partial<Promise<unknown>>).then === 'function') {
    return (claims as Promise<Record<string, unknown>>).then(principalOf, (err: unknown) => { throw invalidToken(err) })
  }
  const verified = claims as Record<string, unknown>
  try {
    return Promise.resolve(principalOf(verified))
  } catch (err) {
    return Promise.reject(err)
  }
}

const invalidToken = (err: unknown): Error => new UnauthorizedError((err as { code?: string }).code ?? 'invalid token')

/** The principal of verified `claims`; throws `UnauthorizedError` when they cannot name one. */
function principalOf (claims: Record<string, unknown>): Principal {
  const problem = userIdProblem(claims.sub)
  if (problem !== null) throw new UnauthorizedError(`sub ${problem}`)
  if (typeof claims.exp !== 'number') throw new UnauthorizedError('token has no exp')
  return new JwtPrincipal(claims)
}

/**
 * A principal read from verified claims as asked: an open connection keeps one object with one
 * field, where a copy of `sub` and a millisecond `expiresAt` (a boxed double) cost 32 bytes more
 * per idle connection. `toJSON` keeps what a log line shows.
 */
class JwtPrincipal implements Principal {
  constructor (readonly claims: Readonly<Record<string, unknown>>) {}

  get user (): string {
    return this.claims.sub as string
  }

  get expiresAt (): number {
    return (this.claims.exp as number) * 1000
  }

  toJSON (): Principal {
    return { user: this.user, expiresAt: this.expiresAt, claims: this.claims }
  }
}

/** The token of an `Authorization: Bearer <token>` header value, or null. */
export function bearerToken (header: string | undefined): string | null {
  if (typeof header !== 'string') return null
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match === null ? null : match[1]
}
