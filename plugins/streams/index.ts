import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyRequest, FastifySchema, onRequestHookHandler } from 'fastify'
import type { WebSocket } from 'ws'
import { InvalidOptionError, TooManyConnectionsError } from '../errors.js'
import { metricsOf, routeStats } from '../recorder.js'
import { integerBetween, positiveInteger } from '../util.js'
import { CLOSE, Connection, sweepExpiries, type RouteContext } from './connection.js'
import { inboundOf } from './channels.js'
import { installDrain } from './drain.js'
import { Fanout } from './fanout.js'
import { Heartbeat } from './heartbeat.js'
import { memberWatch } from './members.js'
import { DRAIN_SPREAD, announceRoute, type NotifyStreamsRoute } from './route.js'

export type { NotifyStreamsRoute } from './route.js'
import { UserConnections, resolveLimits, slowConsumerPolicy, type LimitOptions } from './limits.js'
import { claimUpgrade, corkUpgrade, releaseUpgrade, watchUpgrades } from './upgrade.js'
import { FlushScheduler } from './wire.js'

export type { FrameRateOptions, LimitOptions, SlowConsumerPolicy } from './limits.js'

export interface NotifyStreamsOptions extends LimitOptions {
  /** WebSocket route. @default '/ws' */
  path?: string
  /** Anonymous route: no credential, public streams only. @default false */
  anonymous?: boolean
  /** Most streams one connection may hold (and list in one frame). @default 100 */
  maxSubscriptions?: number
  /** How long `app.close()` waits for sockets to close after 1001 before terminating them, in ms. @default 5000 */
  drainTimeout?: number
  /**
   * Longest time over which a drain spreads its 1001 closes, in ms, so that the clients of a
   * stopping instance do not all reconnect (and resume) at once elsewhere. @default 3000
   */
  drainWindow?: number
  /** Most 1001 closes a drain sends per second, within `drainWindow`: a few sockets close at once. @default 500 */
  drainRate?: number
  /**
   * Largest inbound frame, in bytes; over it the socket is closed with 1009. Applies to the whole
   * WebSocket server and only when this plugin registers `@fastify/websocket` itself.
   * @default 65536
   */
  maxPayload?: number
  /**
   * Interval of protocol pings, in ms; a socket that has read nothing since the previous ping (no
   * pong, no frame) by the next one is terminated. `false` turns them off. @default 30000
   */
  heartbeatInterval?: number | false
  /**
   * How often the members of each channel key with member presence are read again, in ms, so that
   * the members of an instance that died leave (once presence stops counting it). @default 5000
   */
  membersSweepInterval?: number
  /**
   * Write coalescing, in ms: a socket written to less than this long ago holds later notifications
   * (up to a quarter of `maxBufferedBytes`, at most 16 KiB) until the route's next flush tick, then
   * sends them in one write. An idle socket writes at the end of the current event-loop iteration,
   * so a lone notification waits for no timer; under sustained traffic one waits at most this long.
   * `0`: every socket is written at the end of each job, as without coalescing. @default 2
   */
  flushInterval?: number
}

// Chosen from `npm run bench` (docs/benchmarks.md, "sustained").
const DEFAULT_FLUSH_INTERVAL = 2
const MAX_HOLD_BYTES = 16 * 1024

declare module 'fastify' {
  interface FastifyInstance {
    /** Every streams route registered on this instance, by path. */
    notifyStreams: Map<string, NotifyStreamsRoute>
  }
}

/** The handshake URL without its query string, which may hold a ticket or token. */
function redactedRequest (request: FastifyRequest): Record<string, unknown> {
  const url = request.url
  const query = url.indexOf('?')
  return { method: request.method, url: query < 0 ? url : `${url.slice(0, query)}?[redacted]`, remoteAddress: request.ip }
}

async function fastifyNotifyStreams (app: FastifyInstance, opts: NotifyStreamsOptions): Promise<void> {
  const path = opts.path ?? '/ws'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const anonymous = opts.anonymous === true
  const maxSubscriptions = positiveInteger('maxSubscriptions', opts.maxSubscriptions, 100)
  const drainTimeout = positiveInteger('drainTimeout', opts.drainTimeout, 5000)
  const drainSpread = { window: integerBetween('drainWindow', opts.drainWindow, DRAIN_SPREAD.window, 0, 600_000), rate: positiveInteger('drainRate', opts.drainRate, DRAIN_SPREAD.rate) }
  const maxPayload = positiveInteger('maxPayload', opts.maxPayload, 65536)
  const heartbeatInterval = opts.heartbeatInterval === false ? false : positiveInteger('heartbeatInterval', opts.heartbeatInterval, 30_000)
  const flushInterval = integerBetween('flushInterval', opts.flushInterval, DEFAULT_FLUSH_INTERVAL, 0, 1000)
  const limits = resolveLimits(opts)

  if (!app.hasDecorator('websocketServer')) {
    // Each route drains its own sockets with 1001 (the default preClose would send 1005). Closing
    // the server first refuses handshakes still in their auth hooks, so none opens after the
    // drain. Routes track their own connections, so ws need not keep a second set of them.
    await app.register(websocket, {
      options: { maxPayload, clientTracking: false },
      preClose: (done) => {
        app.websocketServer.close()
        done()
      }
    })
  }
  watchUpgrades(app.websocketServer)
  if (!app.hasDecorator('notifyStreams')) {
    app.decorate('notifyStreams', new Map())
    installDrain(app)
  }
  if (app.notifyStreams.has(path)) throw new InvalidOptionError(`a streams route is already registered at ${path}`)

  // The upstream plugin (client publish, RPC, a backend's channel authorize), when registered before this route.
  const inbound = inboundOf(app)
  const connections = new Set<Connection>()
  const history = app.hasDecorator('notifyHistory') ? app.notifyHistory : null
  const stats = routeStats()
  const metrics = metricsOf(app)
  const tracer = app.hasDecorator('notifyTracer') ? app.notifyTracer : null
  const fanout = new Fanout(app.notifyBus, { history, log: app.log, stats, metrics, tracer })
  app.addHook('onClose', async () => fanout.close())
  const members = memberWatch(app, fanout, positiveInteger('membersSweepInterval', opts.membersSweepInterval, 5000))
  const ctx: RouteContext = {
    app,
    fanout,
    anonymous,
    maxSubscriptions,
    history,
    log: app.log,
    limits,
    stats,
    onSlowConsumer: slowConsumerPolicy(limits.slowConsumer, stats),
    sampleLag: (message) => metrics.lag(message.id, fanout.kindOf(message.topic)),
    // Held bytes count toward the slow-consumer limit: hold a fraction of it, so that a socket that
    // reads is never taken for a slow one because of what coalescing held back.
    flushes: new FlushScheduler(flushInterval, Math.min(MAX_HOLD_BYTES, Math.floor(limits.maxBufferedBytes / 4))),
    presence: app.hasDecorator('notifyPresence') ? app.notifyPresence.tracker : null,
    inbound,
    members,
    released (connection) {
      connections.delete(connection)
      users.delete(connection.principal.user)
    }
  }
  announceRoute(app, metrics, { path, connections, topicCount: () => fanout.size, stats, drainTimeout, drainSpread, heldSockets: () => ctx.flushes.waiting })

  // One listener for every socket of the route, called with the socket as `this`.
  function onSocketError (this: WebSocket, err: Error): void {
    // ws reports a peer's protocol violation (a frame over maxPayload, invalid UTF-8, a bad opcode:
    // it has closed with 1009, 1007 or 1002) with a WS_ERR_ code: the client's fault, which any
    // client can cause at will, so no error line and no stack.
    const { code } = err as { code?: unknown }
    if (typeof code === 'string' && code.startsWith('WS_ERR_')) app.log.debug({ code, reason: err.message }, 'websocket closed: client protocol violation')
    else app.log.error({ err }, 'websocket error')
    this.terminate()
  }

  // Registered before the routes by the umbrella: revocation at open, subscriptions from the token.
  const control = app.hasDecorator('notifyControl') ? app.notifyControl : null
  const users = new UserConnections(limits.maxConnectionsPerUser)
  const heartbeat = heartbeatInterval === false
    ? null
    : new Heartbeat(heartbeatInterval, connections, (socket) => {
      stats.heartbeatTimeouts++
      socket.terminate()
    }, stats)
  app.addHook('preClose', () => heartbeat?.stop())

  // Handshake durations are timed only for the metrics plugin.
  const timed = app.hasDecorator('notifyMetrics')
  const started = new WeakMap<FastifyRequest, number>()
  const onRequest: onRequestHookHandler[] = [app.notifySocketAuth({ anonymous }) as onRequestHookHandler]
  if (timed) onRequest.unshift((request, _reply, done) => { started.set(request, performance.now()); done() })
  // Instance and cross-instance limits, after authentication: before the upgrade, as the route's own.
  if (app.hasDecorator('notifyLimits')) onRequest.push(app.notifyLimits.admit as onRequestHookHandler)
  if (limits.maxConnectionsPerUser !== Infinity) {
    onRequest.push((request, _reply, done) => {
      done(users.full(request.notifyPrincipal!.user) ? new TooManyConnectionsError(limits.maxConnectionsPerUser) : undefined)
    })
  }

  // Not an HTTP API: OpenAPI leaves it out (`hide`, read by @fastify/swagger); AsyncAPI describes it.
  // `corkUpgrade` is the route's only preHandler, so the last hook (a route's hooks run after the
  // instance's): the 101 response and `welcome` leave in one write, and the socket is uncorked
  // when the handshake's synchronous run ends, whichever way it ends.
  const routeOptions = { websocket: true as const, onRequest, preHandler: corkUpgrade, logSerializers: { req: redactedRequest }, schema: { hide: true } as FastifySchema }
  app.get(path, routeOptions, (socket: WebSocket, request: FastifyRequest) => {
    claimUpgrade(request.raw)
    releaseUpgrade(socket, onSocketError)
    const { user } = request.notifyPrincipal!
    const connection = new Connection(socket, request.notifyPrincipal!, ctx)
    connections.add(connection)
    users.add(user)
    heartbeat?.start()
    control?.opened(connection)
    if (timed) metrics.handshake(path, (performance.now() - started.get(request)!) / 1000)
    // Two handshakes of one user can pass the check at once; the later one goes.
    if (users.count(user) > limits.maxConnectionsPerUser) {
      connection.close(CLOSE.TRY_AGAIN_LATER, 'too many connections')
    }
  })

  const expirySweep = sweepExpiries(connections)
  app.addHook('onClose', async () => {
    clearInterval(expirySweep)
    ctx.flushes.close()
  })
}

export const notifyStreams = fp(fastifyNotifyStreams, {
  fastify: '5.x',
  name: 'notify-edge-streams',
  dependencies: ['notify-edge-bus', 'notify-edge-notify', 'notify-edge-socket-auth']
})
export default notifyStreams
