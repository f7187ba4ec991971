import type { Revocation } from '../control-commands.js'
import type { Principal } from '../principal.js'

interface UserEntry { before: number, expiresAt: number }

/**
 * This instance's copy of the revocation list, read on every credential check (a map lookup or
 * two: no Redis round trip on a handshake). Kept current by the bus, loaded from the store at
 * start and after every bus reconnect. Entries are dropped once past their `expiresAt`.
 */
export class RevocationList {
  readonly #jtis = new Map<string, number>()
  readonly #users = new Map<string, UserEntry>()
  readonly #now: () => number

  constructor (now: () => number = Date.now) {
    this.#now = now
  }

  get size (): number {
    return this.#jtis.size + this.#users.size
  }

  add (revocation: Revocation): void {
    if (revocation.expiresAt <= this.#now()) return
    if ('jti' in revocation) {
      this.#jtis.set(revocation.jti, Math.max(revocation.expiresAt, this.#jtis.get(revocation.jti) ?? 0))
      return
    }
    const known = this.#users.get(revocation.user)
    this.#users.set(revocation.user, {
      before: Math.max(revocation.before, known?.before ?? 0),
      expiresAt: Math.max(revocation.expiresAt, known?.expiresAt ?? 0)
    })
  }

  /**
   * A token is revoked by its `jti`, or when its user's tokens issued before a time are: its `iat`
   * (whole seconds) is before that time, or it has no `iat` to tell.
   */
  revoked (principal: Principal): boolean {
    if (principal.user === null || this.size === 0) return false
    const now = this.#now()
    const { jti, iat } = principal.claims
    if (typeof jti === 'string') {
      const until = this.#jtis.get(jti)
      if (until !== undefined && until > now) return true
    }
    const entry = this.#users.get(principal.user)
    if (entry === undefined || entry.expiresAt <= now) return false
    return typeof iat !== 'number' || iat * 1000 < entry.before
  }

  /** The entries still in force. */
  entries (): Revocation[] {
    this.sweep()
    const entries: Revocation[] = []
    for (const [jti, expiresAt] of this.#jtis) entries.push({ jti, expiresAt })
    for (const [user, { before, expiresAt }] of this.#users) entries.push({ user, before, expiresAt })
    return entries
  }

  /** Drops the entries past their expiry. */
  sweep (): void {
    const now = this.#now()
    for (const [jti, expiresAt] of this.#jtis) if (expiresAt <= now) this.#jtis.delete(jti)
    for (const [user, entry] of this.#users) if (entry.expiresAt <= now) this.#users.delete(user)
  }
}
