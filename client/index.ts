// A browser and Node client for notify-edge, with no runtime dependency.
import { NotifyClient } from './client.js'
import type { NotifyClientOptions } from './options.js'
import type { AnyStreams } from '../plugins/typed.js'
import type { AnyMethods } from '../plugins/typed-methods.js'

export { NotifyClient } from './client.js'
export type { ConnectedEvent, ConnectionState, DisconnectedEvent, NotifyClientEvents, Published, RequestOptions } from './client.js'
export type { AnyMethods, MethodName, MethodRequest, MethodResponse, MethodTypeMap, MethodTypes } from '../plugins/typed-methods.js'
export { NotifyClientError, type ClientErrorCode, type ServerErrorCode } from './errors.js'
export type { BackoffOptions } from './backoff.js'
export type { CredentialSource, NotifyClientOptions, UrlSource } from './options.js'
export type { WebSocketConstructor, WebSocketLike } from './socket.js'
export type { MessageHandler, NotifyMessage } from './subscriptions.js'
export type { AnyStreams, StreamData, StreamName, StreamTypeMap, StreamTypes } from '../plugins/typed.js'

/**
 * Opens a connection that keeps itself alive; see docs/client.md. `connect<typeof streams>()`
 * types it from the server's stream declaration (imported with `import type`, so nothing of the
 * server reaches the bundle).
 */
export function connect<Streams = AnyStreams, Methods = AnyMethods> (options: NotifyClientOptions): NotifyClient<Streams, Methods> {
  return new NotifyClient<Streams, Methods>(options)
}
