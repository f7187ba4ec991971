/** Codes the client raises itself. */
export type ClientErrorCode =
  | 'NOTIFY_CLIENT_INVALID_OPTION'
  | 'NOTIFY_CLIENT_INVALID_ARGUMENT'
  | 'NOTIFY_CLIENT_NO_WEBSOCKET'
  | 'NOTIFY_CLIENT_CREDENTIAL_FAILED'
  | 'NOTIFY_CLIENT_BAD_FRAME'
  | 'NOTIFY_CLIENT_HANDLER_FAILED'
  | 'NOTIFY_CLIENT_NOT_CONNECTED'
  | 'NOTIFY_CLIENT_DISCONNECTED'
  | 'NOTIFY_CLIENT_TIMEOUT'

/** Codes of the server's `error` frames (SPEC section 4). */
export type ServerErrorCode =
  | 'BAD_REQUEST' | 'UNKNOWN_EVENT' | 'UNKNOWN_STREAM' | 'FORBIDDEN'
  | 'TOO_MANY_SUBSCRIPTIONS' | 'RATE_LIMITED' | 'UNAUTHORIZED'
  | 'UNKNOWN_METHOD' | 'RPC_FAILED' | 'TIMEOUT' | 'UNAVAILABLE' | 'IN_PROGRESS' | 'INTERNAL'

/** Every error the client reports: thrown by `connect()` for bad options, emitted as `error` otherwise. */
export class NotifyClientError extends Error {
  readonly code: ClientErrorCode | ServerErrorCode
  /** The stream an `error` frame was about. */
  readonly stream: string | undefined
  /** The route's HTTP status, for `RPC_FAILED`. */
  readonly status: number | undefined
  /** The app's code for a refused publish (its hook's `reason`). */
  readonly reason: string | undefined

  constructor (code: ClientErrorCode | ServerErrorCode, message: string, extra: { stream?: string, cause?: unknown, status?: number, reason?: string } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause })
    this.name = 'NotifyClientError'
    this.code = code
    this.stream = extra.stream
    this.status = extra.status
    this.reason = extra.reason
  }
}
