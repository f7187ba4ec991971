import type { FastifyInstance } from 'fastify'
import type { EdgeConfig } from '../../bin/config.js'
import { buildEdge } from '../../bin/edge.js'
import { pageRoutes, type PageServices } from '../page.js'
import { STREAMS } from '../streams.js'
import { rpcMethodsAt } from '../methods.js'

/**
 * The dedicated edge the package's bin runs, plus the demo page, told where the other two services
 * are; it forwards the page's RPCs to the order service (which verifies `config.callerSecret`).
 */
export async function buildDemoEdge (config: EdgeConfig, services: PageServices): Promise<FastifyInstance> {
  const app = await buildEdge(config, STREAMS, undefined, services.orders === undefined ? undefined : rpcMethodsAt(services.orders))
  await pageRoutes(app, services)
  return app
}
