import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { InvalidOptionError } from '../errors.js'
import { positiveInteger } from '../util.js'
import { CLOSE, Connection, type RouteContext } from './connection.js'
import { Fanout } from './fanout.js'

export interface NotifyStreamsOptions {
  /** WebSocket route. @default '/ws' */
  path?: string
  /** Anonymous route: no credential, public streams only. @default false */
  anonymous?: boolean
  /** Most streams one connection may hold (and list in one frame). @default 100 */
  maxSubscriptions?: number
  /** How long `app.close()` waits for sockets to close after 1001 before terminating them, in ms. @default 5000 */
  drainTimeout?: number
  /**
   * Largest inbound frame, in bytes; over it the socket is closed with 1009. Applies to the whole
   * WebSocket server and only when this plugin registers `@fastify/websocket` itself.
   * @default 65536
   */
  maxPayload?: number
}

/** A registration's live state, for health checks, metrics and tests. */
export interface NotifyStreamsRoute {
  readonly path: string
  /** Open connections on this route. */
  readonly connections: ReadonlySet<Connection>
  /** Topics this route's sockets subscribe to. */
  topicCount (): number
}

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

/** Closes sockets with 1001, waits for them up to `timeout` ms, then terminates the rest. */
async function drain (connections: Set<Connection>, timeout: number): Promise<void> {
  if (connections.size === 0) return
  const closed = [...connections].map((connection) => {
    connection.close(CLOSE.GOING_AWAY, 'server shutting down')
    return connection.closed
  })
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeout) })
  await Promise.race([Promise.all(closed), late])
  clearTimeout(timer)
  for (const connection of connections) connection.socket.terminate()
  await Promise.all(closed)
}

async function fastifyNotifyStreams (app: FastifyInstance, opts: NotifyStreamsOptions): Promise<void> {
  const path = opts.path ?? '/ws'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('path must start with /')
  const anonymous = opts.anonymous === true
  const maxSubscriptions = positiveInteger('maxSubscriptions', opts.maxSubscriptions, 100)
  const drainTimeout = positiveInteger('drainTimeout', opts.drainTimeout, 5000)
  const maxPayload = positiveInteger('maxPayload', opts.maxPayload, 65536)

  if (!app.hasDecorator('websocketServer')) {
    // Each route drains its own sockets with 1001 (the default preClose would send 1005). Closing
    // the server first (it finishes once its sockets are gone) refuses handshakes still in their
    // auth hooks, so none opens after the drain.
    await app.register(websocket, {
      options: { maxPayload },
      preClose: (done) => {
        app.websocketServer.close()
        done()
      }
    })
  }
  if (!app.hasDecorator('notifyStreams')) app.decorate('notifyStreams', new Map())
  if (app.notifyStreams.has(path)) throw new InvalidOptionError(`a streams route is already registered at ${path}`)

  const connections = new Set<Connection>()
  const fanout = new Fanout(app.notifyBus)
  const history = app.hasDecorator('notifyHistory') ? app.notifyHistory : null
  const ctx: RouteContext = { app, fanout, anonymous, maxSubscriptions, history, log: app.log }
  app.notifyStreams.set(path, { path, connections, topicCount: () => fanout.size })

  app.get(path, {
    websocket: true,
    onRequest: app.notifySocketAuth({ anonymous }),
    logSerializers: { req: redactedRequest }
  }, (socket: WebSocket, request: FastifyRequest) => {
    const connection = new Connection(socket, request.notifyPrincipal!, ctx)
    connections.add(connection)
    connection.closed.then(() => connections.delete(connection))
  })

  app.addHook('preClose', () => drain(connections, drainTimeout))
}

export const notifyStreams = fp(fastifyNotifyStreams, {
  fastify: '5.x',
  name: 'notify-edge-streams',
  dependencies: ['notify-edge-bus', 'notify-edge-notify', 'notify-edge-socket-auth']
})
export default notifyStreams
