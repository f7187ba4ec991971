import type { InboundId } from '../inbound.js'

/** The codes of `error` frames answering a client publish or an RPC (SPEC section 13). */
export type UpstreamErrorCode =
  | 'BAD_REQUEST' | 'UNKNOWN_STREAM' | 'FORBIDDEN' | 'RATE_LIMITED' | 'UNKNOWN_METHOD' | 'RPC_FAILED'
  | 'TIMEOUT' | 'UNAVAILABLE' | 'IN_PROGRESS' | 'INTERNAL'

export interface ErrorExtra {
  id: InboundId
  stream?: string
  /** The route's HTTP status, for `RPC_FAILED`. */
  status?: number
  /** The app's own code for a refusal (a publish hook's `reason`). */
  reason?: string
}

export function upstreamError (code: UpstreamErrorCode, message: string, extra: ErrorExtra): string {
  return JSON.stringify({ event: 'error', code, message, id: extra.id, stream: extra.stream, status: extra.status, reason: extra.reason })
}

/** The frame code of an error thrown by the publish path (a coded FST_NOTIFY_ error with its status). */
export function publishErrorCode (err: unknown): UpstreamErrorCode {
  const { code, statusCode } = err as { code?: string, statusCode?: number }
  if (code === 'FST_NOTIFY_UNKNOWN_STREAM') return 'UNKNOWN_STREAM'
  if (statusCode === 409) return 'IN_PROGRESS'
  if (statusCode === 503) return 'UNAVAILABLE'
  if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) return 'BAD_REQUEST'
  return 'INTERNAL'
}
