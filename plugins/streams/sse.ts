import type { IncomingMessage, ServerResponse } from 'node:http'
import fp from 'fastify-plugin'
import fastifySseModule, { type SSEPluginOptions } from '@fastify/sse'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema, onRequestAsyncHookHandler } from 'fastify'
import { BadSseRequestError, InvalidOptionError, TooManyConnectionsError, UnauthorizedError } from '../errors.js'
import { isMessageId } from '../message-id.js'
import { NO_CLAIMS, bearerToken, principalFromJwt, type Principal } from '../principal.js'
import { metricsOf, routeStats } from '../recorder.js'
import { integerBetween, positiveInteger } from '../util.js'
import { CLOSE, sweepExpiries, type RouteContext } from './connection.js'
import { installDrain } from './drain.js'
import { Fanout } from './fanout.js'
import { UserConnections, resolveLimits, slowConsumerPolicy, type LimitOptions } from './limits.js'
import { errorFrame, type StreamRequest } from './protocol.js'
import { SseConnection, SseSocket, type EventSink } from './sse-connection.js'
import { inboundOf, isUnresolved, resolveTarget } from './channels.js'
import { memberWatch } from './members.js'
import { DRAIN_SPREAD, announceRoute } from './route.js'
import { refuseRevoked } from '../control-hooks.js'
import { AccessTokens, EventIds, processSecret } from './sse-tokens.js'
import { FlushScheduler } from './wire.js'

export interface NotifySseOptions extends Pick<LimitOptions, 'maxBufferedBytes' | 'slowConsumer' | 'maxConnectionsPerUser'> {
  /** The event-stream route; an authenticated one also serves `POST <path>/access`. @default '/sse' */
  path?: string
  /** Anonymous route: no credential, public streams only. @default false */
  anonymous?: boolean
  /**
   * Signs event ids and access tokens: the same on every instance, at least 32 characters, so that
   * a browser resumes on any of them. Without it each process makes its own: a reconnect that
   * lands on another instance then resumes nothing (every stream reports a gap).
   */
  secret?: string
  /** Most streams one response may ask for. @default 100 */
  maxSubscriptions?: number
  /** How often an idle response gets a comment line, in ms (proxies time out silent ones). @default 15000 */
  keepAliveInterval?: number
  /** EventSource's reconnect delay (`retry:`), in ms; a drain asks for one to two times this. @default 2000 */
  retry?: number
  /** Seconds an access token lives, at most (never past the JWT it was issued for). @default 3600 */
  accessTtl?: number
  /** How long `app.close()` waits for responses to end, in ms. @default 5000 */
  drainTimeout?: number
  /** Write coalescing, in ms, as the WebSocket routes' `flushInterval`. @default 2 */
  flushInterval?: number
}

const NAME_LIMIT = 200
// A `since` that is no message id: the subscribe path answers it with a gap.
const UNKNOWN = '?'
// Under NodeNext the CommonJS module's default import is its `module.exports`: the plugin itself,
// wrapped by fastify-plugin (its named `fastifySSE` export is not, and would keep its hook to itself).
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync<SSEPluginOptions>

/** The stream names of `streams=` (comma-separated, or repeated), in order, each once. */
function requestedStreams (value: unknown, max: number): string[] {
  const items = (Array.isArray(value) ? value : [value]).flatMap((item: unknown) => typeof item === 'string' ? item.split(',') : [])
  const names = [...new Set(items.map((item) => item.trim()).filter((item) => item.length > 0))]
  if (names.length === 0 || names.length > max) throw new BadSseRequestError(`streams must list 1 to ${max} streams`)
  if (names.some((name) => name.length > NAME_LIMIT)) throw new BadSseRequestError(`a stream name has at most ${NAME_LIMIT} characters`)
  return names
}

function stringOption (name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value.length < 32) throw new InvalidOptionError(`${name} must be a string of at least 32 characters`)
  return value
}

const sseRoutes = new WeakMap<FastifyInstance['server'], Set<string>>()

/**
 * While the app closes, an EventSource reconnect that still reaches it (on a kept-alive
 * connection, or through a balancer that has not noticed yet) is told to come back later: 200
 * with `retry:` and an empty stream. Fastify would answer 503, and EventSource gives up for good on
 * any answer but 200, where it retries after an empty stream, and then lands on another instance.
 */
function answerReconnectsWhileClosing (app: FastifyInstance, path: string, retry: number): void {
  const server = app.server
  const known = sseRoutes.get(server)
  if (known !== undefined) {
    known.add(path)
    return
  }
  const paths = new Set([path])
  sseRoutes.set(server, paths)
  app.addHook('preClose', (done) => {
    const handlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>
    server.removeAllListeners('request')
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'GET' && paths.has((req.url ?? '').split('?')[0])) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...(req.httpVersionMajor === 1 ? { connection: 'close' } : {}) })
        res.end(`retry: ${Math.round(retry * (1 + Math.random()))}\n\n`)
        return
      }
      for (const handler of handlers) handler.call(server, req, res)
    })
    done()
  })
}

async function fastifyNotifySse (app: FastifyInstance, opts: NotifySseOptions): Promise<void> {
  const path = opts.path ?? '/sse'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const anonymous = opts.anonymous === true
  const maxSubscriptions = positiveInteger('maxSubscriptions', opts.maxSubscriptions, 100)
  const keepAliveInterval = integerBetween('keepAliveInterval', opts.keepAliveInterval, 15_000, 10, 15_000)
  const retry = integerBetween('retry', opts.retry, 2000, 1, 60_000)
  const accessTtl = positiveInteger('accessTtl', opts.accessTtl, 3600)
  const drainTimeout = positiveInteger('drainTimeout', opts.drainTimeout, 5000)
  const flushInterval = integerBetween('flushInterval', opts.flushInterval, 2, 0, 1000)
  const secret = stringOption('secret', opts.secret) ?? processSecret()
  if (opts.secret === undefined) app.log.warn(`notify SSE ${path}: no secret, so a reconnect resumes only on this instance`)
  // One inbound frame per response, made by the route: no frame rate to limit.
  const limits = { ...resolveLimits({ ...opts, frameRate: false }) }
  const ids = new EventIds(secret)
  const tokens = new AccessTokens(secret)

  if (!app.hasPlugin('@fastify/sse')) await app.register(fastifySse, { heartbeatInterval: 0 })
  if (!app.hasDecorator('notifyStreams')) {
    app.decorate('notifyStreams', new Map())
    installDrain(app)
  }
  if (app.notifyStreams.has(path)) throw new InvalidOptionError(`a streams route is already registered at ${path}`)

  const connections = new Set<SseConnection>()
  const users = new UserConnections(limits.maxConnectionsPerUser)
  const history = app.hasDecorator('notifyHistory') ? app.notifyHistory : null
  const stats = routeStats()
  const metrics = metricsOf(app)
  // Bus lag and delivery spans as on the WebSocket routes.
  const tracer = app.hasDecorator('notifyTracer') ? app.notifyTracer : null
  const fanout = new Fanout(app.notifyBus, { history, log: app.log, stats, metrics, tracer })
  const ctx: RouteContext = {
    app,
    fanout,
    // Receive only: an SSE client cannot send a publish or a call; the upstream side answers a
    // backend's channel authorize for the route's own subscribe.
    inbound: inboundOf(app),
    members: memberWatch(app, fanout, 5000),
    anonymous,
    maxSubscriptions,
    history,
    log: app.log,
    limits,
    stats,
    onSlowConsumer: slowConsumerPolicy(limits.slowConsumer, stats),
    sampleLag: (message) => metrics.lag(message.id, fanout.kindOf(message.topic)),
    // Write coalescing as on the WebSocket routes (`flushInterval`, 2 ms by default): under
    // sustained traffic a response writes once per tick instead of once per message.
    flushes: new FlushScheduler(flushInterval, Math.min(16 * 1024, Math.floor(limits.maxBufferedBytes / 4))),
    presence: app.hasDecorator('notifyPresence') ? app.notifyPresence.tracker : null,
    released (connection) {
      connections.delete(connection as SseConnection)
      users.delete(connection.principal.user)
    }
  }
  // A drain spreads the ends of responses as the WebSocket routes' defaults spread their 1001s.
  announceRoute(app, metrics, { path, connections, topicCount: () => fanout.size, stats, drainTimeout, drainSpread: DRAIN_SPREAD, heldSockets: () => ctx.flushes.waiting })

  const socketAuth = app.notifySocketAuth({ anonymous })
  // An access token (`?access=`) first: the credential that survives EventSource's reconnects.
  // Otherwise the WebSocket handshake's credentials, tried in the same order.
  const authenticate: onRequestAsyncHookHandler = async function (request, reply) {
    const access = (request.query as { access?: unknown }).access
    if (anonymous || typeof access !== 'string' || access.length === 0) {
      await socketAuth.call(this, request, reply)
      return
    }
    const grant = tokens.verify(access)
    const problem = grant === null ? 'invalid access token' : grant.expiresAt <= Date.now() ? 'access token expired' : null
    if (problem !== null) {
      const err = new UnauthorizedError(problem)
      metrics.authFailure('handshake', err)
      throw err
    }
    const { user, expiresAt, jti, iat } = grant!
    const claims = jti === undefined && iat === undefined ? NO_CLAIMS : { ...(jti === undefined ? {} : { jti }), ...(iat === undefined ? {} : { iat }) }
    // The JWT it came from may have been revoked since: refused like the JWT itself.
    request.notifyPrincipal = refuseRevoked(app, { user, expiresAt, claims })
  }
  const onRequest: onRequestAsyncHookHandler[] = [authenticate]
  if (limits.maxConnectionsPerUser !== Infinity) {
    onRequest.push(async (request) => {
      if (users.full(request.notifyPrincipal!.user)) throw new TooManyConnectionsError(limits.maxConnectionsPerUser)
    })
  }

  /**
   * Where each stream starts on a fresh response: its history's latest id (`''`: the topic is
   * empty), so that a reconnect misses nothing, even on a stream that got no message meanwhile;
   * null for a stream without history, or whose history could not be read.
   */
  async function latestPositions (names: readonly string[], principal: Principal): Promise<Array<string | null>> {
    return Promise.all(names.map(async (name) => {
      // A channel (`room:lobby`) stands at its key's topic.
      const target = resolveTarget(app.notify.streams, name)
      if (isUnresolved(target)) return null
      const { stream, key } = target
      if (stream.history === undefined || history === null || (stream.kind === 'private' && principal.user === null)) return null
      try {
        const latest = await history.store.latest(stream.topic(key ?? principal.user))
        return latest === '' || isMessageId(latest) ? latest : null
      } catch {
        return null
      }
    }))
  }

  const redacted = (request: FastifyRequest): Record<string, unknown> => ({ method: request.method, url: request.url.split('?')[0] + '?[redacted]', remoteAddress: request.ip })
  const sse = { kind: 'only' as const, heartbeat: false, serializer: String }
  app.get(path, { sse, onRequest, logSerializers: { req: redacted }, schema: { hide: true } as FastifySchema }, async (request: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now()
    const query = request.query as { streams?: unknown, lastEventId?: unknown }
    const names = requestedStreams(query.streams, maxSubscriptions)
    const principal = request.notifyPrincipal!
    const seal = ids.seal(principal.user, names)
    const header = request.headers['last-event-id'] ?? query.lastEventId
    const lastEventId = typeof header === 'string' && header.length > 0 ? header : null
    const resumed = lastEventId === null ? null : ids.parse(lastEventId, seal, names.length)
    const starts = lastEventId === null ? await latestPositions(names, principal) : null
    const positions = resumed ?? starts?.map((start) => start ?? '') ?? names.map(() => '')
    if (reply.raw.destroyed) return
    reply.sse.keepAlive()
    // HTTP/1.1: no chunked encoding, the response ends with its connection (so the reconnect
    // cannot reuse it to reach a draining instance), and events go straight to the TCP socket,
    // as WebSocket frames do: ServerResponse would frame each write as a chunk of its own.
    const http1 = request.raw.httpVersionMajor === 1
    if (http1) {
      (reply.raw as { useChunkedEncodingByDefault?: boolean }).useChunkedEncodingByDefault = false
      reply.header('connection', 'close')
    }
    reply.sse.sendHeaders()
    if (http1) reply.raw.flushHeaders()
    const sink = (http1 ? reply.raw.socket : reply.raw) as unknown as EventSink
    const socket = new SseSocket(reply.sse, reply.raw, sink, names, seal, positions, retry)
    const connection = new SseConnection(socket, principal, ctx)
    connections.add(connection)
    users.add(principal.user)
    metrics.handshake(path, (performance.now() - started) / 1000)
    // Revoked while this response was being set up: closed as a socket would be.
    if (app.hasDecorator('notifyControl')) app.notifyControl.opened(connection)
    if (users.count(principal.user) > limits.maxConnectionsPerUser) {
      connection.close(CLOSE.TRY_AGAIN_LATER, 'too many connections')
      return
    }
    if (lastEventId !== null && resumed === null) {
      socket.send(errorFrame('BAD_REQUEST', 'Last-Event-ID is malformed, forged, or not from this user and these streams: every stream starts afresh'))
    }
    // Through the WebSocket's own subscribe path: a resume asks for every stream after its
    // position ('': from the topic's start); a fresh response for each stream with history after
    // its latest id; an id that cannot be trusted for nothing (every stream a gap).
    const streams: Array<StreamRequest | string> = names.map((name, i) => starts !== null
      ? starts[i] === null ? name : { stream: name, since: starts[i]! }
      : { stream: name, since: resumed === null ? UNKNOWN : positions[i] })
    socket.emit('message', Buffer.from(JSON.stringify({ event: 'subscribe', streams })), false)
  })

  if (!anonymous) {
    // An access token for the bearer's user, for `?access=`: it expires with the JWT, or sooner.
    app.post(`${path}/access`, { schema: { hide: true } as FastifySchema }, async (request) => {
      const jwt = bearerToken(request.headers.authorization)
      let principal: Principal
      try {
        if (jwt === null) throw new UnauthorizedError('missing bearer token')
        principal = refuseRevoked(app, await principalFromJwt(app, jwt))
      } catch (err) {
        metrics.authFailure('ticket', err)
        throw err
      }
      const expiresAt = Math.min(principal.expiresAt ?? Infinity, Date.now() + accessTtl * 1000)
      const { jti, iat } = principal.claims
      const grant = { user: principal.user!, expiresAt, jti: typeof jti === 'string' ? jti : undefined, iat: typeof iat === 'number' ? iat : undefined }
      return { access: tokens.issue(grant), expiresAt }
    })
  }

  answerReconnectsWhileClosing(app, path, retry)

  const timers = [
    setInterval(() => {
      for (const connection of connections) (connection.socket as unknown as SseSocket).comment()
    }, keepAliveInterval).unref(),
    sweepExpiries(connections)
  ]
  app.addHook('onClose', async () => {
    for (const timer of timers) clearInterval(timer)
    fanout.close()
    ctx.flushes.close()
  })
}

export const notifySse = fp(fastifyNotifySse, {
  fastify: '5.x',
  name: 'notify-edge-sse',
  dependencies: ['notify-edge-bus', 'notify-edge-notify', 'notify-edge-socket-auth']
})
export default notifySse
