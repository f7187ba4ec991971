// A channel's `authorize` answered by a backend (SPEC section 13, a dedicated edge), for the
// subscribes and the client publishes of every connection. Each connection keeps the yes it got
// for a key for the stream's `cacheTtl`, so that a chat's every line does not cost a round trip:
// a yes only lets a connection do again, for a short while, what it was just allowed to do. A no,
// a failure and a timeout are never kept: the next frame asks again.
import type { PublishTarget } from '../inbound.js'
import type { Principal } from '../principal.js'
import type { AuthorizeGate } from './gates.js'

/** Keys one connection keeps a yes for; past it, the oldest is forgotten (asked again when used). */
const MAX_KEPT = 256

interface RemoteKeyGate {
  gate: AuthorizeGate
  /** ms a yes is reused by the connection that got it; 0: never. */
  cacheTtl: number
}

export class RemoteKeys {
  // Per connection (held weakly: a closed connection's answers go with it), key → when its yes expires.
  readonly #kept = new WeakMap<object, Map<string, number>>()

  constructor (private readonly gates: ReadonlyMap<string, RemoteKeyGate>) {}

  /** Whether `principal`, on `connection`, may use `target`'s key. Never rejects; an undeclared stream refuses. */
  async allowed (connection: object, principal: Principal, target: Required<PublishTarget>): Promise<boolean> {
    const declared = this.gates.get(target.stream)
    if (declared === undefined) return false
    const name = `${target.stream}:${target.key}`
    const kept = this.#kept.get(connection)
    const until = kept?.get(name)
    if (until !== undefined) {
      if (until > performance.now()) return true
      kept!.delete(name)
    }
    const allowed = await declared.gate(principal, target)
    if (allowed && declared.cacheTtl > 0) this.#keep(connection, name, declared.cacheTtl)
    return allowed
  }

  #keep (connection: object, name: string, ttl: number): void {
    let kept = this.#kept.get(connection)
    if (kept === undefined) this.#kept.set(connection, kept = new Map())
    // Re-inserted at the end, so that the first entry is always the oldest.
    kept.delete(name)
    if (kept.size >= MAX_KEPT) kept.delete(kept.keys().next().value!)
    kept.set(name, performance.now() + ttl)
  }
}
