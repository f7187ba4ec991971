import fp from 'fastify-plugin'
import type { FastifyInstance, FastifySchema } from 'fastify'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { InvalidOptionError } from './errors.js'
import type { NotifyMetricsRecorder, RouteGauges, RouteStats } from './recorder.js'

export type { AuthStage, NotifyMetricsRecorder, RouteGauges, RouteStats } from './recorder.js'

export interface NotifyMetricsOptions {
  /** Route serving the Prometheus text; `false` registers none (read `app.notifyMetrics.registry`). @default '/metrics' */
  path?: string | false
  /** Registry to fill. @default a new Registry of this app's own, never prom-client's global one */
  registry?: Registry
  /** Also collect prom-client's process metrics (CPU, memory, event loop lag) into the registry. @default true */
  defaultMetrics?: boolean
  /** Prefix of every metric name. @default 'notify_edge_' */
  prefix?: string
}

export interface NotifyMetrics extends NotifyMetricsRecorder {
  readonly registry: Registry
  /** Prefix of every metric name, for plugins that add metrics of their own (the ingresses). */
  readonly prefix: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Prometheus metrics of the edge (see `NotifyMetrics`). */
    notifyMetrics: NotifyMetrics
  }
}

/** A bounded label for why a credential was refused. */
export function authFailureReason (err: unknown): string {
  const { code, message = '' } = err as { code?: string, message?: string }
  if (code === 'FST_NOTIFY_FORBIDDEN_ORIGIN') return 'origin'
  if (code === 'FST_NOTIFY_TICKET_STORE_UNAVAILABLE') return 'store_unavailable'
  if (code !== 'FST_NOTIFY_UNAUTHORIZED') return 'other'
  if (message.includes('ticket')) return 'ticket'
  if (message.includes('missing')) return 'missing'
  if (/expired/i.test(message)) return 'expired'
  return 'invalid'
}

const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const ROUTE_COUNTERS: Array<[keyof RouteStats, string, string]> = [
  ['delivered', 'messages_delivered_total', 'Message frames written to sockets'],
  ['dropped', 'messages_dropped_total', 'Message frames dropped because the socket was over its buffer limit'],
  ['slowConsumerCloses', 'slow_consumer_closes_total', 'Sockets closed with 1013 for not reading'],
  ['heartbeatTimeouts', 'heartbeat_timeouts_total', 'Sockets terminated for missing a protocol pong'],
  ['rateLimited', 'frames_rate_limited_total', 'Inbound frames refused with RATE_LIMITED'],
  ['badFrames', 'bad_frames_total', 'Inbound frames that failed to parse'],
  ['policyCloses', 'policy_closes_total', 'Sockets closed with 1008'],
  ['repaired', 'messages_repaired_total', 'Messages lost on the bus and delivered from history instead (counted once per topic)'],
  ['gaps', 'gaps_total', 'Holes in live delivery history could not fill, announced with a gap frame (counted once per topic)']
]

async function fastifyNotifyMetrics (app: FastifyInstance, opts: NotifyMetricsOptions): Promise<void> {
  const path = opts.path ?? '/metrics'
  if (path !== false && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw new InvalidOptionError('path must start with / or be false')
  }
  const prefix = opts.prefix ?? 'notify_edge_'
  if (typeof prefix !== 'string' || !METRIC_PREFIX.test(prefix)) throw new InvalidOptionError(`prefix must match ${METRIC_PREFIX}`)
  if (opts.registry !== undefined && !(opts.registry instanceof Registry)) {
    throw new InvalidOptionError('registry must be a prom-client Registry')
  }
  const registry = opts.registry ?? new Registry()
  const registers = [registry]
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix })

  // Filled by each streams route registered after this plugin.
  const routes = new Map<string, RouteGauges>()

  /* eslint-disable no-new */
  new Gauge({
    name: `${prefix}connections`,
    help: 'Open WebSocket connections',
    labelNames: ['route'],
    registers,
    collect () {
      for (const [route, gauges] of routes) this.set({ route }, gauges.connections())
    }
  })
  new Gauge({
    name: `${prefix}subscriptions`,
    help: 'Stream subscriptions held by open connections',
    labelNames: ['route'],
    registers,
    collect () {
      for (const [route, gauges] of routes) this.set({ route }, gauges.subscriptions())
    }
  })
  new Gauge({
    name: `${prefix}bus_topics`,
    help: 'Bus topics this instance listens to',
    registers,
    collect () {
      if (app.hasDecorator('notifyBus')) this.set(app.notifyBus.topicCount())
    }
  })
  new Gauge({
    name: `${prefix}bus_healthy`,
    help: '1 while the bus can publish and receive (on Redis: both connections ready), else 0',
    labelNames: ['backend'],
    registers,
    collect () {
      if (!app.hasDecorator('notifyBus')) return
      const { healthy, backend } = app.notifyBus.health()
      this.set({ backend }, healthy ? 1 : 0)
    }
  })
  for (const [field, name, help] of ROUTE_COUNTERS) {
    new Counter({
      name: `${prefix}${name}`,
      help,
      labelNames: ['route'],
      registers,
      collect () {
        this.reset()
        for (const [route, gauges] of routes) this.inc({ route }, gauges.stats[field])
      }
    })
  }
  /* eslint-enable no-new */

  const published = new Counter({ name: `${prefix}messages_published_total`, help: 'Messages put on the bus', labelNames: ['stream'], registers })
  const publishFailures = new Counter({ name: `${prefix}publish_failures_total`, help: 'Publishes the bus refused or timed out', labelNames: ['stream'], registers })
  const authFailures = new Counter({ name: `${prefix}auth_failures_total`, help: 'Refused credentials', labelNames: ['stage', 'reason'], registers })
  const handshakes = new Histogram({
    name: `${prefix}handshake_duration_seconds`,
    help: 'From the upgrade request to the open socket, authentication included',
    labelNames: ['route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers
  })
  const lagBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
  const lag = new Histogram({
    name: `${prefix}delivery_lag_seconds`,
    help: 'From publish (message id timestamp) to the socket write, sampled; across instances it includes clock skew',
    labelNames: ['kind'],
    buckets: lagBuckets,
    registers
  })
  const busLag = new Histogram({
    name: `${prefix}bus_lag_seconds`,
    help: 'From publish (message id timestamp) to this instance receiving it from the bus, sampled; across instances it includes clock skew',
    labelNames: ['kind'],
    buckets: lagBuckets,
    registers
  })
  const negativeLag = new Counter({
    name: `${prefix}negative_lag_total`,
    help: 'Lag samples below zero (the publisher\'s clock ahead of this one), observed as 0',
    labelNames: ['metric', 'kind'],
    registers
  })
  // Message ids carry the publisher's clock: a sample from an instance whose clock runs ahead is
  // negative; it is clamped to 0 and counted, so skew shows instead of vanishing.
  const observeLag = (histogram: Histogram<'kind'>, metric: string, messageId: string, kind: string): void => {
    const ms = Date.now() - Number.parseInt(messageId, 10)
    if (Number.isNaN(ms)) return
    if (ms < 0) negativeLag.inc({ metric, kind })
    histogram.observe({ kind }, Math.max(ms, 0) / 1000)
  }

  const metrics: NotifyMetrics = {
    registry,
    prefix,
    published: (stream) => published.inc({ stream }),
    publishFailed: (stream) => publishFailures.inc({ stream }),
    authFailure: (stage, err) => authFailures.inc({ stage, reason: authFailureReason(err) }),
    handshake: (route, seconds) => handshakes.observe({ route }, seconds),
    lag: (messageId, kind = 'unknown') => observeLag(lag, 'delivery', messageId, kind),
    busLag: (messageId, kind) => observeLag(busLag, 'bus', messageId, kind),
    route: (path, gauges) => { routes.set(path, gauges) }
  }
  app.decorate('notifyMetrics', metrics)

  if (path !== false) {
    app.get(path, { logLevel: 'warn', schema: { hide: true } as FastifySchema }, async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()))
  }
}

export const notifyMetrics = fp(fastifyNotifyMetrics, { fastify: '5.x', name: 'notify-edge-metrics' })
export default notifyMetrics
