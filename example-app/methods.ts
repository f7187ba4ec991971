import { Type } from 'typebox'
import { defineMethods } from '../plugins/index.js'

// The methods the demo page calls over its socket (SPEC section 13), served by the order
// service's own routes: in process in the one-process example, forwarded by the dedicated edge
// to the order service when split out (`rpcMethodsAt`). The page types `rpc()` from this.
export const METHODS = defineMethods({
  'orders.place': { method: 'POST', url: '/orders', response: Type.Object({ orderId: Type.String(), online: Type.Optional(Type.Boolean()) }) },
  'orders.list': { method: 'GET', url: '/orders', response: Type.Object({ orders: Type.Array(Type.Object({ orderId: Type.String(), status: Type.String() })) }) }
})

/** The same methods, served by the order service at `origin` (a dedicated edge forwards them there). */
export function rpcMethodsAt (origin: string): typeof METHODS {
  return Object.fromEntries(Object.entries(METHODS).map(([name, method]) => [name, { ...method, url: `${origin}${method.url}` }])) as typeof METHODS
}
