import { BusUnavailableError, DeclarationMismatchError, EdgeRefusedError } from '../errors.js'
import type { Sent } from '../publishing.js'

// An edge's answer to a remote publisher, whatever carried it: HTTP's status and JSON body, or a
// gRPC reply and status mapped onto them. One mapping, so every transport throws the same codes.

export interface EdgeAnswer { status: number, body: Record<string, unknown> }

/** The error class for "cannot tell now, retry" (503): the bus's for a publish, presence's for a query. */
type Unavailable = new (reason: string) => Error

/** How many instances had a subscriber, as far as the edge's answer tells (its `online`/`offline`). */
function receivers (body: Record<string, unknown>, user: string | null): number | null {
  if (typeof body.online === 'boolean') return body.online ? 1 : 0
  if (Array.isArray(body.offline)) return body.offline.includes(user) ? 0 : 1
  return null
}

/** What a publisher throws for an edge's refusal: what an embedded edge would have thrown. */
export function refusal ({ status, body }: EdgeAnswer, Unavailable: Unavailable): Error {
  const reason = `${status} ${String(body.code ?? '')} ${String(body.message ?? '')}`.replace(/\s+/g, ' ').trim()
  // The call passed the same checks here: a 400 there means the edge declares the stream otherwise.
  if (status === 400) return new DeclarationMismatchError(reason)
  if (status >= 500) return new Unavailable(`edge answered ${reason}`)
  return new EdgeRefusedError(reason)
}

/** One `Sent` per recipient from an edge's answer to a publish, or the coded error it amounts to. */
export function sentFrom (answer: EdgeAnswer, users: Array<string | null>): Sent[] {
  if (answer.status !== 202) throw refusal(answer, BusUnavailableError)
  const { body } = answer
  const ids = Array.isArray(body.ids) ? body.ids as string[] : [body.id as string]
  if (ids.length === users.length && ids.every((id) => typeof id === 'string')) {
    return ids.map((id, i) => ({ id, receivers: receivers(body, users[i]) }))
  }
  throw new BusUnavailableError(`the edge answered 202 without ${users.length} id(s)`)
}
