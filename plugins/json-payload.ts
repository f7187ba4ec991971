import sjp from 'secure-json-parse'
import { InvalidJsonError, PayloadTooLargeError } from './errors.js'

// The one JSON rule for every way data comes in (HTTP body, gRPC `data_json`, AMQP body, and any
// later ingress): secure parse as Fastify's own JSON parser does it (a `__proto__` key or a
// `constructor.prototype` is refused: subscribers that deep-merge what they receive would be
// polluted), one nesting limit, one size limit, one coded refusal.

/** Deepest nesting of objects and arrays a publish's `data` may have (`{}` is 1, `{"a":[]}` is 2). */
export const JSON_MAX_DEPTH = 32
/** Default size limit of every ingress, in bytes. */
export const JSON_MAX_BYTES = 65536

export interface JsonLimits {
  /** Largest payload in bytes; over it `FST_NOTIFY_PAYLOAD_TOO_LARGE` (413). @default 65536 */
  maxBytes?: number
  /** Deepest nesting; deeper is `FST_NOTIFY_INVALID_JSON` (400). @default 32 */
  maxDepth?: number
}

const SECURE = { protoAction: 'error', constructorAction: 'error' } as const
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

function tooDeep (value: unknown, left: number): boolean {
  if (value === null || typeof value !== 'object') return false
  if (left === 0) return true
  if (Array.isArray(value)) {
    for (const item of value) if (tooDeep(item, left - 1)) return true
    return false
  }
  for (const key in value) if (tooDeep((value as Record<string, unknown>)[key], left - 1)) return true
  return false
}

function checkDepth (value: unknown, maxDepth: number): void {
  if (tooDeep(value, maxDepth)) throw new InvalidJsonError(`nested deeper than ${maxDepth} levels`)
}

function secure<T> (scan: () => T): T {
  try {
    return scan()
  } catch (err) {
    // secure-json-parse throws a SyntaxError both for bad JSON and for a forbidden key.
    const message = (err as Error).message
    throw new InvalidJsonError(message.startsWith('Object contains forbidden') ? 'forbidden key (__proto__ or constructor.prototype)' : 'not JSON')
  }
}

/**
 * JSON text (a string, or bytes that must be UTF-8) parsed under the shared rule. Throws
 * `FST_NOTIFY_PAYLOAD_TOO_LARGE` over `maxBytes`, `FST_NOTIFY_INVALID_JSON` for bytes that are not
 * UTF-8, text that is not JSON, a forbidden key or nesting deeper than `maxDepth`.
 */
export function parseJsonPayload (raw: string | Uint8Array, limits: JsonLimits = {}): unknown {
  const maxBytes = limits.maxBytes ?? JSON_MAX_BYTES
  if (maxBytes !== Infinity && (typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength) > maxBytes) {
    throw new PayloadTooLargeError(maxBytes)
  }
  let text: string
  if (typeof raw === 'string') {
    text = raw
  } else {
    try {
      text = utf8.decode(raw)
    } catch {
      throw new InvalidJsonError('not UTF-8')
    }
  }
  const value: unknown = secure(() => sjp.parse(text, null, SECURE))
  checkDepth(value, limits.maxDepth ?? JSON_MAX_DEPTH)
  return value
}

/**
 * A value some library parsed already (rabbitmq-client parses `application/json` bodies with a plain
 * `JSON.parse`), held to the same rule: depth first (so measuring it cannot overflow the stack),
 * then forbidden keys, then its size as JSON text.
 */
export function checkJsonValue (value: unknown, limits: JsonLimits = {}): unknown {
  checkDepth(value, limits.maxDepth ?? JSON_MAX_DEPTH)
  if (value !== null && typeof value === 'object') secure(() => sjp.scan(value, SECURE))
  const maxBytes = limits.maxBytes ?? JSON_MAX_BYTES
  if (Buffer.byteLength(JSON.stringify(value) ?? '') > maxBytes) throw new PayloadTooLargeError(maxBytes)
  return value
}
