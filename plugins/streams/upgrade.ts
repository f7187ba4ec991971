import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
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
