import type { FastifyInstance } from 'fastify'
import type { EdgeConfig } from '../../bin/config.js'
import { buildEdge } from '../../bin/edge.js'
import type { StreamDefinition } from '../../plugins/index.js'
import { pageRoutes, type PageServices } from '../page.js'
import { roomRoutes, type MayJoin } from '../rooms.js'
import { STREAMS } from '../streams.js'
import { rpcMethodsAt } from '../methods.js'
import { ROOM_HOOK } from './orders.js'

/**
 * The example's streams as the dedicated edge declares them: the `room` channel's rule is the
 * order service's, asked over HTTP at `orders` (SPEC section 13) instead of run in the edge.
 */
export function edgeStreams (orders: string): StreamDefinition[] {
  return STREAMS.map((stream) => stream.name === 'room'
    ? { ...stream, authorize: { url: `${orders}${ROOM_HOOK}` } }
    : stream) as StreamDefinition[]
}

/**
 * The dedicated edge the package's bin runs, plus the demo page, told where the other two services
 * are; it forwards the page's RPCs to the order service (which verifies `config.callerSecret`) and
 * asks it who may use a room.
 */
export async function buildDemoEdge (config: EdgeConfig, services: PageServices): Promise<FastifyInstance> {
  const orders = services.orders
  const app = await buildEdge(config, orders === undefined ? STREAMS : edgeStreams(orders), undefined, orders === undefined ? undefined : rpcMethodsAt(orders))
  await pageRoutes(app, services)
  // The page's room history and members; who may see them, the order service says (through the
  // upstream plugin, as for a subscribe; a request is its own caller, so nothing is kept).
  const mayJoin: MayJoin | undefined = orders === undefined
    ? undefined
    : (principal, room) => app.notifyUpstream.authorizeKey({ principal, send () {} }, { stream: 'room', key: room })
  await app.register(roomRoutes, { mayJoin })
  // The dedicated edge sends no Web Push (docs/offline-delivery.md): the page is told so.
  app.get('/demo/push', async () => ({ publicKey: null }))
  return app
}
