/** What a ticket remembers about the caller it was issued to. */
export interface TicketRecord {
  /** The JWT's `sub`. */
  user: string
  /** The JWT's `exp`, in ms since the epoch: the connection expires with it. */
  expiresAt: number
  /** The token's claims a connection keeps (`keepClaims`: `jti` and `iat` for revocation); absent when none. */
  claims?: Readonly<Record<string, unknown>>
}

/** Where tickets live until redeemed; the Redis store makes redemption single-use across instances. */
export interface TicketStore {
  /** Keeps `record` under `ticket` for `ttlSeconds`. */
  issue (ticket: string, record: TicketRecord, ttlSeconds: number): Promise<void>
  /** Takes the ticket out atomically: the record the first time, null ever after or once expired. */
  redeem (ticket: string): Promise<TicketRecord | null>
}
