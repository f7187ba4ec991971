// What the plugins report to metrics, and nothing else: a leaf every plugin may import, so that
// the metrics plugin depends on no other plugin and no other plugin depends on it.
import type { FastifyInstance } from 'fastify'

/**
 * Plain counters of one streams route, bumped on the hot path (a field increment costs next to
 * nothing) and read by the metrics plugin when it is scraped.
 */
export interface RouteStats {
  /** Message frames written to sockets. */
  delivered: number
  /** Message frames not written because the socket was over its buffer limit. */
  dropped: number
  /** Sockets closed with 1013 for not reading. */
  slowConsumerCloses: number
  /** Sockets terminated for not answering a protocol ping. */
  heartbeatTimeouts: number
  /** Heartbeat sweeps run (one per interval while the route has sockets). */
  heartbeatSweeps: number
  /** Protocol pings the sweeps sent (a socket whose client talked since the last sweep is not pinged). */
  heartbeatPings: number
  /** CPU time the sweeps took, in µs (pinging every socket; pongs are read later, outside the sweep). */
  heartbeatSweepCpuUs: number
  /** Inbound frames refused with `RATE_LIMITED`. */
  rateLimited: number
  /** Inbound frames that failed to parse. */
  badFrames: number
  /** Sockets closed with 1008 (bad frames or rate abuse). */
  policyCloses: number
  /** Messages lost on the bus and delivered from history instead, once per topic. */
  repaired: number
  /** Holes history could not fill, announced with a `gap` frame, once per topic. */
  gaps: number
}

export function routeStats (): RouteStats {
  return { delivered: 0, dropped: 0, slowConsumerCloses: 0, heartbeatTimeouts: 0, heartbeatSweeps: 0, heartbeatPings: 0, heartbeatSweepCpuUs: 0, rateLimited: 0, badFrames: 0, policyCloses: 0, repaired: 0, gaps: 0 }
}

/** A streams route as metrics read it at scrape time. */
export interface RouteGauges {
  /** Open connections on the route. */
  connections (): number
  /** Stream subscriptions its connections hold. */
  subscriptions (): number
  readonly stats: Readonly<RouteStats>
}

/** Where an authentication failed. */
export type AuthStage = 'handshake' | 'ticket'

/** What the other plugins report; a no-op stands in when the metrics plugin is not registered. */
export interface NotifyMetricsRecorder {
  published (stream: string): void
  publishFailed (stream: string): void
  authFailure (stage: AuthStage, err: unknown): void
  handshake (route: string, seconds: number): void
  /** Publish-to-write lag of one sampled delivery, from the message id's timestamp; `kind`: the stream's. */
  lag (messageId: string, kind?: string): void
  /** Publish-to-bus-receipt lag of one sampled message on this instance, from the message id's timestamp. */
  busLag (messageId: string, kind: string): void
  /** A streams route registers its gauges once, at registration. */
  route (path: string, gauges: RouteGauges): void
}

const NO_METRICS: NotifyMetricsRecorder = {
  published () {},
  publishFailed () {},
  authFailure () {},
  handshake () {},
  lag () {},
  busLag () {},
  route () {}
}

/** The app's metrics recorder, or a no-op when the metrics plugin is not registered (before). */
export function metricsOf (app: FastifyInstance): NotifyMetricsRecorder {
  return app.hasDecorator('notifyMetrics') ? (app as unknown as { notifyMetrics: NotifyMetricsRecorder }).notifyMetrics : NO_METRICS
}
