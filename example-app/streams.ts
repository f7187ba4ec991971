import { Type } from 'typebox'
import { defineStreams, type Principal } from '../plugins/index.js'

// The example's streams: one module that the edge (embedded, or the dedicated edge through
// STREAMS_CONFIG, whose default this is) and the publishing services share. History lets a
// client that reconnects (or lands on another instance) resume with `since`; docs/history.md
// explains these sizes. The TypeBox schema validates at run time and types publishing.

/** Who placed an order, or null when unknown: the order service answers it (see orderRoutes). */
export type OrderOwner = (orderId: string) => Promise<string | null>

/** Who may read and write a room: any signed-in user, but `support-…` rooms are for support staff only. */
export function mayJoinRoom (principal: Principal, { key }: { key?: string }): boolean {
  const user = principal.user
  return user !== null && (key?.startsWith('support-') !== true || user.startsWith('support-'))
}

const ORDER = Type.Object({ orderId: Type.String(), status: Type.String() })

/**
 * The streams, with the `order-status` channel's rule: an order's owner may follow it, and so may
 * support staff (`support-…`). `owner` is asked only at subscribe time, so the app may hand in a
 * lookup whose order book is built later.
 */
export function exampleStreams (owner: OrderOwner = async () => null) {
  return defineStreams([
    { name: 'order', kind: 'private', schema: ORDER, history: { size: 100, ttl: 3600 } },
    { name: 'reward', kind: 'private', history: { size: 100, ttl: 3600 } },
    { name: 'promotional', kind: 'public', history: { size: 100, ttl: 3600 } },
    { name: 'system', kind: 'public', history: { size: 1000, ttl: 3600 } },
    // Signed-in users join rooms (`mayJoinRoom`) and say something there over the socket (the
    // server sets `from`); members and join / leave are announced. Split out, the edge asks the
    // order service, which applies the same rule (example-app/split/).
    { name: 'room', kind: 'channel', authorize: mayJoinRoom, members: true, clientPublish: true, schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 500 }) }), history: { size: 100, ttl: 3600 } },
    // One order, followed by its owner and by support staff.
    {
      name: 'order-status',
      kind: 'channel',
      schema: ORDER,
      history: { size: 20, ttl: 3600 },
      authorize: async (principal: Principal, { key }) =>
        principal.user !== null && (principal.user.startsWith('support-') || await owner(key) === principal.user)
    }
  ])
}

export const STREAMS = exampleStreams()
export default STREAMS
