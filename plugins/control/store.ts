import type { Revocation } from '../control-commands.js'

/** Where revocations outlive the instances that learnt them; each entry expires by itself. */
export interface RevocationStore {
  /** Keeps `revocation` until its `expiresAt`. */
  add (revocation: Revocation): Promise<void>
  /** Every entry still in force. */
  list (): Promise<Revocation[]>
}
