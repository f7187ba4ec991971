import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { isMessageId } from '../message-id.js'

// What an SSE response hands the browser to come back with, signed with one secret shared by
// every instance: the `id:` of each event (where every stream of the response stands), and the
// access token that authenticates EventSource's reconnects (a one-time ticket cannot).

/** Longest `Last-Event-ID` read; a longer one is refused unread. */
export const MAX_EVENT_ID_LENGTH = 8192
const SEAL_BYTES = 12
const ACCESS_MAC_BYTES = 16

function mac (key: Buffer, text: string, bytes: number): Buffer {
  return createHmac('sha256', key).update(text).digest().subarray(0, bytes)
}

function sameMac (given: string, expected: Buffer): boolean {
  const bytes = Buffer.from(given, 'base64url')
  return bytes.length === expected.length && timingSafeEqual(bytes, expected)
}

/** A key derived from the secret for one purpose, so that an event id never passes as an access token. */
function derive (secret: string | Buffer, purpose: string): Buffer {
  return createHmac('sha256', secret).update(`notify-edge sse ${purpose}`).digest()
}

/** A secret for one process when none is configured: ids and tokens then resume only here. */
export function processSecret (): Buffer {
  return randomBytes(32)
}

/**
 * Event ids: `<seal>.<position>.<position>…`, one position per stream the response asked for, in
 * the order of its `streams=` (the id of the last message written on it, or empty when none is
 * known). The seal is a MAC of the user and that stream list, made once per response: it binds
 * the positions to whoever asked and what they asked for, so a `Last-Event-ID` from another user
 * or another stream list is refused. The positions themselves are the client's to choose, as a
 * WebSocket client chooses `since`: they only ever select messages of the principal's own topics.
 */
export class EventIds {
  readonly #key: Buffer

  constructor (secret: string | Buffer) {
    this.#key = derive(secret, 'event id')
  }

  /** The seal of one response. */
  seal (user: string | null, streams: readonly string[]): string {
    return mac(this.#key, `${user ?? ''}\n${streams.join(',')}`, SEAL_BYTES).toString('base64url')
  }

  /** The id of an event of a response at `positions`. */
  static format (seal: string, positions: readonly string[]): string {
    return positions.length === 1 ? `${seal}.${positions[0]}` : `${seal}.${positions.join('.')}`
  }

  /**
   * The positions a `Last-Event-ID` carries for a response sealed `seal` with `count` streams, or
   * null when it is malformed, forged, or was given to another user or for other streams.
   */
  parse (lastEventId: string, seal: string, count: number): string[] | null {
    if (lastEventId.length > MAX_EVENT_ID_LENGTH) return null
    const parts = lastEventId.split('.')
    if (parts.length !== count + 1 || !sameMac(parts[0], Buffer.from(seal, 'base64url'))) return null
    const positions = parts.slice(1)
    return positions.every((position) => position === '' || isMessageId(position)) ? positions : null
  }
}

/** What an access token carries: its user, its expiry, and the JWT's `jti` and `iat` so that a revocation reaches it. */
export interface AccessGrant {
  user: string
  expiresAt: number
  jti?: string
  iat?: number
}

/**
 * Access tokens: `<base64url user>.<expiry, ms>.<base64url jti>.<iat, s>.<MAC>`. A token lets its
 * bearer receive the user's streams over SSE until it expires, and nothing else: it cannot get a
 * ticket, publish or call the app. It rides in the URL because EventSource cannot set headers, and
 * reconnects with it. It keeps the JWT's `jti` and `iat`, so revoking the JWT revokes it too.
 */
export class AccessTokens {
  readonly #key: Buffer

  constructor (secret: string | Buffer) {
    this.#key = derive(secret, 'access')
  }

  issue ({ user, expiresAt, jti, iat }: AccessGrant): string {
    const body = [Buffer.from(user, 'utf8').toString('base64url'), expiresAt, Buffer.from(jti ?? '', 'utf8').toString('base64url'), iat ?? ''].join('.')
    return `${body}.${mac(this.#key, body, ACCESS_MAC_BYTES).toString('base64url')}`
  }

  /** The grant of a valid token, null for a forged or malformed one (expiry is the caller's to check). */
  verify (token: string): AccessGrant | null {
    const parts = token.split('.')
    if (parts.length !== 5 || token.length > 1024) return null
    const body = parts.slice(0, 4).join('.')
    if (!sameMac(parts[4], mac(this.#key, body, ACCESS_MAC_BYTES))) return null
    if (!/^\d{1,15}$/.test(parts[1]) || !/^\d{0,15}$/.test(parts[3])) return null
    const grant: AccessGrant = { user: Buffer.from(parts[0], 'base64url').toString('utf8'), expiresAt: Number(parts[1]) }
    if (parts[2] !== '') grant.jti = Buffer.from(parts[2], 'base64url').toString('utf8')
    if (parts[3] !== '') grant.iat = Number(parts[3])
    return grant
  }
}
