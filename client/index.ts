// A browser and Node client for notify-edge, with no runtime dependency.
import { NotifyClient } from './client.js'
import type { NotifyClientOptions } from './options.js'

export { NotifyClient } from './client.js'
export type { ConnectedEvent, ConnectionState, DisconnectedEvent, NotifyClientEvents } from './client.js'
export { NotifyClientError, type ClientErrorCode, type ServerErrorCode } from './errors.js'
export type { BackoffOptions } from './backoff.js'
export type { CredentialSource, NotifyClientOptions } from './options.js'
export type { WebSocketConstructor, WebSocketLike } from './socket.js'
export type { MessageHandler, NotifyMessage } from './subscriptions.js'

/** Opens a connection that keeps itself alive; see docs/client.md. */
export function connect (options: NotifyClientOptions): NotifyClient {
  return new NotifyClient(options)
}
