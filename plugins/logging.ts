import type { FastifyRequest } from 'fastify'
import { traceLogFields } from './tracing.js'

// Credentials travel in query strings (browsers cannot set headers on a WebSocket), so any log
// line that holds a URL can hold a ticket or a JWT.

/**
 * Query parameters that carry a credential, in lower case: the handshake's (`ticket`, `token`,
 * `auth_header`) and the usual others, so a host app's own routes are covered too.
 */
const SECRET_NAMES = new Set(['ticket', 'token', 'auth_header', 'access_token', 'id_token', 'refresh_token', 'jwt', 'authorization', 'api_key', 'apikey', 'x-api-key'])
// A parameter wherever a query may start: Fastify's router ends a path at `?`, `;` or `#`, and the
// query parser splits on `&` only, decoding names and values. The value runs to the next `&` (or a
// quote or space, where a log message quotes the URL: no ticket or JWT holds one).
const PARAM_NAME = /[?&;#]([^=&?;#\s'"]*)=/g
const VALUE_END = /[&\s'"]/g
// Runs of URL characters: an encoded JWT hides in one holding a percent escape. (One class, no
// backtracking: a URL of 16 KB of `%` must not cost seconds per log line.)
const URL_RUN = /[\w.%-]+/g
// Three base64url segments, as fast-jwt takes a JWT; the header must decode to a JSON object.
const JWT_SHAPE = /(?<![\w-])[\w-]+\.[\w-]+\.[\w-]*/g
const REDACTED = '[redacted]'

/** Percent escapes decoded byte by byte, up to three times (double encoding), never throwing. */
function percentDecoded (text: string): string {
  let decoded = text
  for (let round = 0; round < 3 && decoded.includes('%'); round++) {
    const next = decoded.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    if (next === decoded) break
    decoded = next
  }
  return decoded
}

/** The name a query parser would see: decoded, `+` as space, any `[…]` array suffix (`qs`) dropped. */
function isSecretName (raw: string): boolean {
  let name = percentDecoded(raw.replace(/\+/g, ' ')).trim().toLowerCase()
  // By index, not by a regular expression: `[[[[…` must not backtrack.
  if (name.endsWith(']') && name.includes('[')) name = name.slice(0, name.lastIndexOf('[')).trim()
  return SECRET_NAMES.has(name)
}

// The first base64url character of `{`, or of the white space JSON allows before it.
const HEADER_START = new Set(['e', 'I', 'C', 'D'])

function isJwtHeader (segment: string): boolean {
  return HEADER_START.has(segment[0]) && Buffer.from(segment, 'base64url').toString('latin1').trimStart().startsWith('{')
}

function redactJwts (text: string): string {
  return text.includes('.') ? text.replace(JWT_SHAPE, (jwt) => isJwtHeader(jwt.slice(0, jwt.indexOf('.'))) ? REDACTED : jwt) : text
}

// One pass, no recursion: a harmless parameter's value is searched too (`?a=1;token=…`), and
// the scan goes on right after each `=`, so no value is read twice.
function redactParams (text: string): string {
  let out = ''
  let copied = 0
  PARAM_NAME.lastIndex = 0
  for (let match = PARAM_NAME.exec(text); match !== null; match = PARAM_NAME.exec(text)) {
    if (!isSecretName(match[1])) continue
    const start = PARAM_NAME.lastIndex
    VALUE_END.lastIndex = start
    const end = VALUE_END.exec(text)?.index ?? text.length
    out += `${text.slice(copied, start)}${REDACTED}`
    copied = end
    PARAM_NAME.lastIndex = end
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/**
 * `text` with the value of every credential query parameter (its name matched as the query parser
 * decodes it, repeated or in array form) and anything shaped like a JWT, plain or percent-encoded,
 * replaced by `[redacted]`.
 */
export function redactSecrets (text: string): string {
  let redacted = text.includes('=') ? redactParams(text) : text
  if (redacted.includes('%')) {
    redacted = redacted.replace(URL_RUN, (run) => run.includes('%') && redactJwts(percentDecoded(run)).includes(REDACTED) ? REDACTED : run)
  }
  return redactJwts(redacted)
}

/** Fastify's request serializer, with the secrets of the URL redacted. */
export function redactedReqSerializer (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: typeof request.url === 'string' ? redactSecrets(request.url) : undefined,
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

/**
 * `err` itself when neither its message nor its stack (nor its cause's) holds a secret; else a copy
 * with them redacted, of the same prototype, so the logger's error serializer sees the same type.
 * A bad URL's error quotes the URL.
 */
function redactedError (err: Error): Error {
  const message = redactSecrets(err.message)
  const stack = err.stack === undefined ? undefined : redactSecrets(err.stack)
  const cause = err.cause instanceof Error ? redactedError(err.cause) : err.cause
  if (message === err.message && stack === err.stack && cause === err.cause) return err
  return errorCopy(err, message, stack, cause)
}

function errorCopy (err: Error, message: string, stack: string | undefined, cause: unknown): Error {
  const copy = Object.assign(Object.create(Object.getPrototypeOf(err) as object) as Error, err)
  Object.defineProperties(copy, {
    message: { value: message, writable: true, configurable: true },
    stack: { value: stack, writable: true, configurable: true },
    cause: { value: cause, writable: true, configurable: true }
  })
  return copy
}

const INFO = 30
const ERROR = 50

/** The `err` of a log call's merging object when it is a client's fault (status 4xx) logged below error. */
function clientFault (first: unknown): Error | null {
  if (first === null || typeof first !== 'object') return null
  const err = (first as { err?: unknown }).err
  if (!(err instanceof Error)) return null
  const status = (err as { statusCode?: unknown }).statusCode
  return typeof status === 'number' && status >= 400 && status < 500 ? err : null
}

function stackless (err: Error): Error {
  return errorCopy(err, err.message, undefined, err.cause)
}

/** Header paths redacted wherever a serializer logs headers, and a decoded query's credentials wherever one is logged. */
const REDACT_PATHS = [
  ...['authorization', 'cookie', 'x-api-key', 'set-cookie'].flatMap((header) => [
    `req.headers["${header}"]`, `headers["${header}"]`, `request.headers["${header}"]`
  ]),
  ...[...SECRET_NAMES].flatMap((name) => [`query["${name}"]`, `request.query["${name}"]`])
]

interface LoggerOptionsSubset {
  serializers: { req: typeof redactedReqSerializer }
  redact: { paths: string[], censor: string }
  hooks: { logMethod (this: unknown, args: unknown[], method: (...args: unknown[]) => void, level: number): void }
  formatters: { log (object: Record<string, unknown>): Record<string, unknown> }
  mixin (): Record<string, string>
}

/**
 * Pino options for a host app's Fastify logger that keep tickets, JWTs, API keys and cookies out
 * of every log line: the request serializer, redact paths for headers, and a pass over log
 * messages, top-level string fields and errors (Fastify's 404 line, a bad URL's error and
 * @fastify/websocket's log carry the raw URL). Spread them into `Fastify({ logger: { level, ...notifyEdgeLoggerOptions() } })`.
 * Lines written inside an OpenTelemetry span (a traced publish or delivery) carry its
 * `trace_id`, `span_id` and `trace_flags`.
 */
export function notifyEdgeLoggerOptions (): LoggerOptionsSubset {
  return {
    serializers: { req: redactedReqSerializer },
    mixin: traceLogFields,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    hooks: {
      logMethod (args, method, level) {
        for (let i = 0; i < args.length; i++) {
          if (typeof args[i] === 'string') args[i] = redactSecrets(args[i] as string)
        }
        const err = level < ERROR ? clientFault(args[0]) : null
        if (err !== null) {
          // A client's fault (a 4xx: bad request, bad credential) is no alert and has no stack
          // worth keeping; Fastify logs it at info with one. Any client can cause it at will.
          args[0] = { ...(args[0] as object), err: stackless(err) }
          if (level === INFO) return (this as { debug: (...args: unknown[]) => void }).debug(...args)
        }
        method.apply(this, args)
      }
    },
    formatters: {
      log (object) {
        let copy: Record<string, unknown> | null = null
        for (const key of Object.keys(object)) {
          const value = object[key]
          const redacted = typeof value === 'string' ? redactSecrets(value) : value instanceof Error ? redactedError(value) : value
          if (redacted === value) continue
          copy ??= { ...object }
          copy[key] = redacted
        }
        return copy ?? object
      }
    }
  }
}
