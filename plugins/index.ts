import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { notifyBus, type NotifyBusOptions } from './bus/index.js'
import { notifyHistory, type NotifyHistoryOptions } from './history/index.js'
import { notify, type NotifyOptions } from './notify.js'
import { notifyTickets, type NotifyTicketsOptions } from './tickets/index.js'
import { notifySocketAuth, type NotifySocketAuthOptions } from './socket-auth.js'
import { notifyStreams, type NotifyStreamsOptions } from './streams/index.js'
import { notifyPublishApi, type NotifyPublishApiOptions } from './publish-api.js'
import { notifyMetrics, type NotifyMetricsOptions } from './metrics.js'

export * from './errors.js'
export * from './bus/index.js'
export * from './history/index.js'
export * from './notify.js'
export { compareMessageIds, isMessageId } from './message-id.js'
export * from './tickets/index.js'
export * from './socket-auth.js'
export * from './streams/index.js'
export * from './publish-api.js'
export * from './metrics.js'
export { notifyEdgeLoggerOptions, redactSecrets, redactedReqSerializer } from './logging.js'

/** How JWTs are verified: an HS256 secret, or an RS256/ES256 public key. */
export type NotifyJwtOptions =
  | { secret: string }
  | { publicKey: string | Buffer, algorithm: 'RS256' | 'ES256' }

export interface NotifyEdgeOptions extends NotifyOptions {
  /** Registers `@fastify/jwt` with pinned algorithms; leave out when the app registered it already. */
  jwt?: NotifyJwtOptions
  bus?: NotifyBusOptions
  /** History for streams that declare `history`, and the replay cap. @default {} (memory) */
  history?: NotifyHistoryOptions
  /** Ticket issuance; false to leave it out. @default {} */
  tickets?: NotifyTicketsOptions | false
  socketAuth?: NotifySocketAuthOptions
  /** WebSocket routes. @default [{ path: '/ws' }, { path: '/public', anonymous: true }] */
  routes?: NotifyStreamsOptions[]
  /** `POST /notifications`; left out when not given. */
  publishApi?: NotifyPublishApiOptions
  /** Prometheus metrics and `GET /metrics`; left out when not given. */
  metrics?: NotifyMetricsOptions
}

const MIN_SECRET_LENGTH = 32

function jwtPluginOptions (opts: NotifyJwtOptions): Parameters<typeof jwt>[1] {
  if ('secret' in opts) {
    if (typeof opts.secret !== 'string' || opts.secret.length < MIN_SECRET_LENGTH) {
      throw new InvalidOptionError(`jwt.secret must be at least ${MIN_SECRET_LENGTH} characters`)
    }
    return { secret: opts.secret, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'] } }
  }
  if (opts.algorithm !== 'RS256' && opts.algorithm !== 'ES256') {
    throw new InvalidOptionError('jwt.algorithm must be RS256 or ES256')
  }
  if (typeof opts.publicKey !== 'string' && !Buffer.isBuffer(opts.publicKey)) {
    throw new InvalidOptionError('jwt.publicKey must be a PEM string or Buffer')
  }
  return { secret: { public: opts.publicKey }, verify: { algorithms: [opts.algorithm] } }
}

/** Registers the whole edge from one options object; each plugin stays usable alone. */
async function fastifyNotifyEdge (app: FastifyInstance, opts: NotifyEdgeOptions): Promise<void> {
  const { jwt: jwtOptions, bus, history, tickets, socketAuth, routes, publishApi, metrics, ...core } = opts
  // First, so that every plugin after it finds the recorder.
  if (metrics !== undefined) await app.register(notifyMetrics, metrics)
  if (jwtOptions !== undefined) await app.register(jwt, jwtPluginOptions(jwtOptions))
  await app.register(notifyBus, bus ?? {})
  await app.register(notifyHistory, history ?? {})
  await app.register(notify, core)
  if (tickets !== false) await app.register(notifyTickets, tickets ?? {})
  await app.register(notifySocketAuth, socketAuth ?? {})
  for (const route of routes ?? [{ path: '/ws' }, { path: '/public', anonymous: true }]) {
    await app.register(notifyStreams, route)
  }
  if (publishApi !== undefined) await app.register(notifyPublishApi, publishApi)
}

export const notifyEdge = fp(fastifyNotifyEdge, { fastify: '5.x', name: 'notify-edge' })
export default notifyEdge
