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
  /** Inbound frames refused with `RATE_LIMITED`. */
  rateLimited: number
  /** Inbound frames that failed to parse. */
  badFrames: number
  /** Sockets closed with 1008 (bad frames or rate abuse). */
  policyCloses: number
}

export function routeStats (): RouteStats {
  return { delivered: 0, dropped: 0, slowConsumerCloses: 0, heartbeatTimeouts: 0, rateLimited: 0, badFrames: 0, policyCloses: 0 }
}
