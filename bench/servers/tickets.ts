import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { verifyToken } from '../lib/shared.js'

const TTL_MS = 30_000

/**
 * The plain contenders' equivalent of the project's tickets: `POST /ws/ticket` with a Bearer JWT
 * returns a one-time ticket that a handshake redeems.
 */
export class TicketDesk {
  readonly #tickets = new Map<string, { user: string, expires: number }>()

  /** Answers `POST /ws/ticket`; returns false for any other request. */
  handle (req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || req.url !== '/ws/ticket') return false
    req.resume()
    const header = req.headers.authorization
    const user = header?.startsWith('Bearer ') === true ? verifyToken(header.slice(7)) : null
    if (user === null) {
      res.writeHead(401).end()
      return true
    }
    const body = JSON.stringify(this.issue(user))
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
    return true
  }

  /** A new ticket for `user`, as `POST /ws/ticket` answers it. */
  issue (user: string): { ticket: string, expiresIn: number } {
    const ticket = randomBytes(32).toString('base64url')
    this.#tickets.set(ticket, { user, expires: Date.now() + TTL_MS })
    return { ticket, expiresIn: TTL_MS / 1000 }
  }

  /** The ticket's user, once; null when unknown, used or expired. */
  redeem (ticket: string): string | null {
    const record = this.#tickets.get(ticket)
    if (record === undefined) return null
    this.#tickets.delete(ticket)
    return record.expires > Date.now() ? record.user : null
  }

  /** The user behind `?ticket=` or else `?token=` (checked by `verify`), or null. */
  authenticate (ticket: string | null | undefined, token: string | null | undefined, verify: (token: string) => string | null = verifyToken): string | null {
    if (ticket != null) return this.redeem(ticket)
    return token == null ? null : verify(token)
  }
}
