// The client-facing frames of the protocol (SPEC section 4): parsing what clients send and
// building what they receive.
import type { PublishFrame, RpcFrame } from '../inbound.js'

import { JSON_MAX_DEPTH, parseJsonPayload } from '../json-payload.js'

export type ErrorCode =
  | 'BAD_REQUEST' | 'UNKNOWN_EVENT' | 'UNKNOWN_STREAM' | 'FORBIDDEN'
  | 'TOO_MANY_SUBSCRIPTIONS' | 'RATE_LIMITED' | 'UNAUTHORIZED'

/** A correlation id as the client sent it: echoed back untouched. */
export type CorrelationId = string | number | undefined

/** One stream of a subscribe frame: a name, with the message id to resume after. */
export interface StreamRequest { stream: string, since?: string }

export type ClientFrame =
  | { event: 'subscribe', id: CorrelationId, streams: StreamRequest[] }
  | { event: 'unsubscribe', id: CorrelationId, streams: StreamRequest[] }
  | { event: 'ping', id: CorrelationId }
  | { event: 'refresh', id: CorrelationId, token: string }
  | PublishFrame
  | RpcFrame

/** A frame that could not be understood: answered with one `error` frame. */
export class FrameError extends Error {
  constructor (readonly code: ErrorCode, message: string, readonly id: CorrelationId = undefined) {
    super(message)
  }
}

const MAX_ID_LENGTH = 128
const MAX_SINCE_LENGTH = 64

function correlationId (value: unknown): CorrelationId {
  if (value === undefined) return undefined
  if ((typeof value === 'string' && value.length <= MAX_ID_LENGTH) || (typeof value === 'number' && Number.isFinite(value))) {
    return value
  }
  throw new FrameError('BAD_REQUEST', `id must be a string of at most ${MAX_ID_LENGTH} characters or a number`)
}

function streamRequests (value: unknown, maxItems: number, id: CorrelationId): StreamRequest[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > maxItems) {
    throw new FrameError('BAD_REQUEST', `streams must be an array of 1 to ${maxItems} items`, id)
  }
  return value.map((item: unknown) => {
    if (typeof item === 'string') return { stream: item }
    if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
      const { stream, since } = item as Record<string, unknown>
      if (typeof stream === 'string' && (since === undefined || (typeof since === 'string' && since.length <= MAX_SINCE_LENGTH))) {
        return since === undefined ? { stream } : { stream, since }
      }
    }
    throw new FrameError('BAD_REQUEST', 'a stream is a name or {"stream": name, "since": message id}', id)
  })
}

const PUBLISH_FIELDS = new Set(['event', 'id', 'stream', 'data', 'idempotencyKey'])
const RPC_FIELDS = new Set(['event', 'id', 'method', 'data'])
// `<stream>:<key>`: a stream name (64) and a channel key (128).
const MAX_TARGET_LENGTH = 64 + 1 + 128
const MAX_METHOD_LENGTH = 128

/** Refuses any field a frame does not define: a client-sent `from` is an error, not ignored. */
function onlyFields (fields: Record<string, unknown>, allowed: Set<string>, id: CorrelationId): void {
  for (const name in fields) {
    if (!allowed.has(name)) throw new FrameError('BAD_REQUEST', `unexpected property ${name.slice(0, 32)}`, id)
  }
}

function publishFrame (fields: Record<string, unknown>, id: CorrelationId, bytes: number): PublishFrame {
  onlyFields(fields, PUBLISH_FIELDS, id)
  const { stream, data, idempotencyKey } = fields
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > MAX_TARGET_LENGTH) {
    throw new FrameError('BAD_REQUEST', 'publish needs a stream', id)
  }
  if (data === undefined) throw new FrameError('BAD_REQUEST', 'publish needs data', id)
  if (idempotencyKey !== undefined && typeof idempotencyKey !== 'string') {
    throw new FrameError('BAD_REQUEST', 'idempotencyKey must be a string', id)
  }
  return { event: 'publish', id, stream, data, idempotencyKey, bytes }
}

function rpcFrame (fields: Record<string, unknown>, id: CorrelationId): RpcFrame {
  onlyFields(fields, RPC_FIELDS, id)
  if (id === undefined) throw new FrameError('BAD_REQUEST', 'rpc needs an id', id)
  const { method, data } = fields
  if (typeof method !== 'string' || method.length === 0 || method.length > MAX_METHOD_LENGTH) {
    throw new FrameError('BAD_REQUEST', 'rpc needs a method', id)
  }
  return { event: 'rpc', id, method, data }
}

/**
 * Parses one inbound WebSocket message; throws `FrameError` for anything off-protocol. The
 * server's sockets keep ws's default binaryType, so a message is always one Buffer.
 */
export function parseClientFrame (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean, maxStreams: number): ClientFrame {
  if (isBinary) throw new FrameError('BAD_REQUEST', 'binary frames are not accepted')
  let frame: unknown
  try {
    // The rule every way in shares (a frame may carry data to publish). ws has checked the size
    // (maxPayload) and that a text frame is UTF-8, so the text goes in as a string.
    frame = parseJsonPayload((data as Buffer).toString('utf8'), { maxBytes: Infinity, maxDepth: JSON_MAX_DEPTH + 1 })
  } catch (err) {
    throw new FrameError('BAD_REQUEST', (err as Error).message)
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    throw new FrameError('BAD_REQUEST', 'frame must be a JSON object')
  }
  const { event } = frame as Record<string, unknown>
  const fields = frame as Record<string, unknown>
  const id = correlationId(fields.id)
  switch (event) {
    case 'subscribe':
    case 'unsubscribe':
      return { event, id, streams: streamRequests(fields.streams, maxStreams, id) }
    case 'ping':
      return { event, id }
    case 'refresh':
      if (typeof fields.token !== 'string' || fields.token.length === 0) {
        throw new FrameError('BAD_REQUEST', 'refresh needs a token', id)
      }
      return { event, id, token: fields.token }
    case 'publish':
      return publishFrame(fields, id, (data as Buffer).length)
    case 'rpc':
      return rpcFrame(fields, id)
    default:
      throw new FrameError('UNKNOWN_EVENT', 'unknown event', id)
  }
}

/** Serializes a server frame, leaving out fields that are undefined. */
export function frame (event: string, fields: Record<string, unknown>): string {
  return JSON.stringify({ event, ...fields })
}

export function errorFrame (code: ErrorCode, message: string, extra: { stream?: string, id?: CorrelationId } = {}): string {
  return frame('error', { code, stream: extra.stream, message, id: extra.id })
}
