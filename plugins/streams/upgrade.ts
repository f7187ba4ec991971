import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { WebSocket } from 'ws'

type UpgradedSocket = Socket & { _httpMessage?: ServerResponse | null }

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
 * The last hook before an upgrade: corks its TCP socket, so that ws's 101 response and the frames
 * the handler sends (welcome) leave in one write instead of one each. `openedUpgrade` uncorks; a
 * handshake that ws refuses is ended, which uncorks too. A plain GET is left alone.
 */
export function corkUpgrade (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (request.ws) request.raw.socket.cork()
  done()
}

/** Sends what the upgrade's handler wrote, with the 101 response. */
export function openedUpgrade (request: FastifyRequest): void {
  request.raw.socket.uncork()
}
