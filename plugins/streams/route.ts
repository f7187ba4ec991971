// What every streams route (WebSocket or SSE) tells the rest of the edge about itself: drain,
// health and control find it in `app.notifyStreams`, metrics read its gauges at scrape time.
import type { FastifyInstance } from 'fastify'
import type { NotifyMetricsRecorder, RouteStats } from '../recorder.js'
import type { Connection } from './connection.js'

/** How a drain spreads a route's closes by default: over 3 s, at most 500 a second. */
export const DRAIN_SPREAD = { window: 3000, rate: 500 } as const

/** A registration's live state, for health checks, metrics and tests. */
export interface NotifyStreamsRoute {
  readonly path: string
  /** Open connections on this route. */
  readonly connections: ReadonlySet<Connection>
  /** Topics this route's sockets subscribe to. */
  topicCount (): number
  /** Counters of what happened on this route. */
  readonly stats: Readonly<RouteStats>
  /** How long `app.close()` waits for this route's sockets, in ms. */
  readonly drainTimeout: number
  /** How the drain spreads its closes: over at most `window` ms, at most `rate` a second. */
  readonly drainSpread: { readonly window: number, readonly rate: number }
  /** Sockets whose notifications wait, corked, for the route's next flush tick. */
  heldSockets (): number
}

/** Makes a route known to drain, health and control (`app.notifyStreams`) and to metrics. */
export function announceRoute (app: FastifyInstance, metrics: NotifyMetricsRecorder, route: NotifyStreamsRoute): void {
  app.notifyStreams.set(route.path, route)
  const { connections } = route
  metrics.route(route.path, {
    stats: route.stats,
    connections: () => connections.size,
    subscriptions () {
      let count = 0
      for (const connection of connections) count += connection.subscriptions
      return count
    }
  })
}
