import type { FastifyRequest } from 'fastify'
import { traceLogFields } from './tracing.js'

// Credentials travel in query strings (browsers cannot set headers on a WebSocket), so any log
// line that holds a URL can hold a ticket or a JWT.

const SECRET_PARAMS = /([?&](?:ticket|token|auth_header|access_token)=)[^&#\s"]*/gi
// A JWT wherever it shows up (a header.payload.signature of base64url, header starting `{"`).
const JWT = /eyJ[\w-]*\.[\w-]*\.[\w-]*/g
const REDACTED = '[redacted]'

/** `text` with credential query parameters and anything shaped like a JWT replaced by `[redacted]`. */
export function redactSecrets (text: string): string {
  return text.replace(SECRET_PARAMS, `$1${REDACTED}`).replace(JWT, REDACTED)
}

/** Fastify's request serializer, with the secrets of the URL redacted. */
export function redactedReqSerializer (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactSecrets(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

/** Header paths redacted wherever a serializer logs headers. */
const REDACT_PATHS = ['authorization', 'cookie', 'x-api-key', 'set-cookie'].flatMap((header) => [
  `req.headers["${header}"]`, `headers["${header}"]`, `request.headers["${header}"]`
])

interface LoggerOptionsSubset {
  serializers: { req: typeof redactedReqSerializer }
  redact: { paths: string[], censor: string }
  hooks: { logMethod (this: unknown, args: unknown[], method: (...args: unknown[]) => void): void }
  formatters: { log (object: Record<string, unknown>): Record<string, unknown> }
  mixin (): Record<string, string>
}

/**
 * Pino options for a host app's Fastify logger that keep tickets, JWTs, API keys and cookies out
 * of every log line: the request serializer, redact paths for headers, and a pass over log
 * messages and top-level string fields (Fastify's 404 line and @fastify/websocket's log the raw
 * URL). Spread them into `Fastify({ logger: { level, ...notifyEdgeLoggerOptions() } })`.
 * Lines written inside an OpenTelemetry span (a traced publish or delivery) carry its
 * `trace_id`, `span_id` and `trace_flags`.
 */
export function notifyEdgeLoggerOptions (): LoggerOptionsSubset {
  return {
    serializers: { req: redactedReqSerializer },
    mixin: traceLogFields,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    hooks: {
      logMethod (args, method) {
        for (let i = 0; i < args.length; i++) {
          if (typeof args[i] === 'string') args[i] = redactSecrets(args[i] as string)
        }
        method.apply(this, args)
      }
    },
    formatters: {
      log (object) {
        let copy: Record<string, unknown> | null = null
        for (const key of Object.keys(object)) {
          const value = object[key]
          if (typeof value !== 'string') continue
          const redacted = redactSecrets(value)
          if (redacted === value) continue
          copy ??= { ...object }
          copy[key] = redacted
        }
        return copy ?? object
      }
    }
  }
}
