import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'

type UpgradedSocket = Socket & { _httpMessage?: ServerResponse | null }

// Sockets ws has upgraded, by request, until the route's handler takes them (`claimUpgrade`).
const unclaimed = new WeakMap<IncomingMessage, WebSocket>()
const watched = new WeakSet<WebSocketServer>()

/**
 * ws emits 'connection' and only then does @fastify/websocket call the route's handler, so a
 * 'connection' listener that throws skips the handler: the socket would stay open, known to no
 * route and to no client set (`clientTracking: false`), and hold `app.close()` for as long as the
 * client stays. This records each upgraded socket before any listener of the app's runs; the
 * route's handler takes it, and `corkUpgrade` terminates one left untaken when the handshake's
 * synchronous run ends.
 */
export function watchUpgrades (wss: WebSocketServer): void {
  if (watched.has(wss)) return
  watched.add(wss)
  wss.prependListener('connection', (socket: WebSocket, request: IncomingMessage) => { unclaimed.set(request, socket) })
}

/** The route's handler has the socket of `request`. */
export function claimUpgrade (request: IncomingMessage): void {
  unclaimed.delete(request)
}

/**
 * Lets the upgrade's request and reply be collected once the socket is open. @fastify/websocket
 * keeps them reachable for the socket's whole life, through the closure of its 'error' listener
 * and through the response it assigned to the TCP socket (`_httpMessage`): a few KB per idle
 * connection that nothing reads again. The listener is replaced by `onError`, which must end the
 * socket as @fastify/websocket's default handler does.
 */
export function releaseUpgrade (socket: WebSocket, onError: (this: WebSocket, err: Error) => void): void {
  socket.removeAllListeners('error')
  socket.on('error', onError)
  const tcp = (socket as unknown as { _socket: UpgradedSocket | null })._socket
  const response = tcp?._httpMessage
  if (tcp != null && response != null) response.detachSocket(tcp)
}

/**
 * The route's last preHandler hook: corks the upgrade's TCP socket for the rest of the handshake,
 * so that ws's 101 response and the frames the handler sends (welcome) leave in one write instead
 * of one each (one syscall, and one TCP segment, less per handshake). A plain GET of the route is
 * left alone (an HTTP request on a keep-alive connection, answered 404), and so is a handshake
 * without a TCP socket (`app.injectWS()` passes a request object that has none).
 *
 * The cork and the uncork are in this one stack frame, so that no path can leave the socket
 * corked. Fastify calls the route handler from `done()` synchronously when this is the last hook,
 * and @fastify/websocket's handler hands the socket to ws's `handleUpgrade`, which (with no
 * asynchronous `verifyClient`) writes the 101 response and calls the route's handler synchronously
 * too: by the time `done()` returns, the 101 and `welcome` are both in the corked buffer, and the
 * uncork sends them in one `writev`. Every other way out returns through here as well: ws refusing
 * the handshake (400, or 503 once the server is closing) ends the socket, and `end()` uncorks it
 * fully, so the uncork here does nothing; a HEAD request is answered 404 by a response whose
 * `end()` uncorks fully too; an exception thrown between ws's 101 and the route's handler (a
 * 'connection' listener, say) skips the handler, and only this uncork lets the 101 out (the
 * socket is then terminated: see `watchUpgrades`). Were the
 * handler ever called later (another asynchronous preHandler after this one, a future Fastify), or
 * `welcome` written later (permessage-deflate compresses asynchronously), the uncork would come
 * first: one write more, never a socket left corked. And an extra uncork can only send early what
 * a FrameWriter holds for the next flush tick, never hold anything. test/upgrade-cork.test.ts
 * walks these paths.
 */
export function corkUpgrade (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const tcp = request.raw.socket as Socket | undefined
  if (!request.ws || tcp == null) {
    done()
    return
  }
  tcp.cork()
  try {
    done()
  } finally {
    tcp.uncork()
    const orphan = unclaimed.get(request.raw)
    if (orphan !== undefined) {
      unclaimed.delete(request.raw)
      request.log.error('a WebSocket connection listener threw before the route took the socket: terminating it')
      orphan.terminate()
    }
  }
}
