import type { BackoffOptions } from './backoff.js'
import { NotifyClientError } from './errors.js'
import { socketUrl, type WebSocketConstructor } from './socket.js'
import type { EventSourceConstructor } from './sse.js'

/** `websocket`; `sse`: Server-Sent Events, receive only; `auto`: WebSocket, SSE once a WebSocket cannot be opened. */
export type Transport = 'websocket' | 'sse' | 'auto'

/** A credential source; called again before every (re)connect. */
export type CredentialSource = () => string | Promise<string>

/** Picks the endpoint of each (re)connect, for client-side failover (a service registry, a health check). */
export type UrlSource = () => string | Promise<string>

export interface NotifyClientOptions {
  /**
   * The WebSocket endpoint, e.g. `wss://example.com/ws`; relative (`/ws`) and http(s) URLs are
   * accepted in browsers. Several URLs: each (re)connect takes the next one, starting from a
   * random one. A function: called before each (re)connect, it returns the URL to use.
   */
  url: string | readonly string[] | UrlSource
  /** Returns a one-time ticket (`POST /ws/ticket`); sent as `?ticket=`. Called before every (re)connect. */
  getTicket?: CredentialSource
  /**
   * Returns a current JWT. Sent as `?token=` when there is no `getTicket`, and used to `refresh`
   * the connection before it expires.
   */
  getToken?: CredentialSource
  /** WebSocket constructor, e.g. the `ws` package on Node 20. @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor
  /** Reconnect delays in ms. @default { min: 500, max: 20000, drain: 3000 } */
  backoff?: Partial<BackoffOptions>
  /**
   * How often the server's liveness is checked, in ms: a server not heard from during one interval
   * (no frame; in Node, no protocol ping either) is sent an application-level ping, so a silent
   * server is found within two intervals and `pingTimeout`. @default 25000
   */
  pingInterval?: number
  /** How long to wait for a pong (or any frame) before dropping the connection, in ms. @default 10000 */
  pingTimeout?: number
  /** How long to wait for `welcome` after opening a socket, in ms. @default 10000 */
  connectTimeout?: number
  /** How long before expiry to send `refresh` (at most half the remaining lifetime), in ms. @default 30000 */
  refreshBefore?: number
  /** See `Transport` and docs/sse.md. @default 'websocket' */
  transport?: Transport
  /** The SSE endpoint. @default `url` with `/ws` → `/sse` (any other path `p` → `p/sse`) */
  sseUrl?: string
  /** EventSource constructor. @default globalThis.EventSource */
  EventSource?: EventSourceConstructor
}

export interface ResolvedOptions {
  /** The endpoint of the next connect. */
  url: () => Promise<URL>
  getTicket: CredentialSource | undefined
  getToken: CredentialSource | undefined
  /** Undefined only with transport 'sse'. */
  WebSocket: WebSocketConstructor | undefined
  backoff: BackoffOptions
  pingInterval: number
  pingTimeout: number
  connectTimeout: number
  refreshBefore: number
  transport: Transport
  sseUrl: URL | null
  EventSource: EventSourceConstructor | undefined
}

function invalid (message: string): NotifyClientError {
  return new NotifyClientError('NOTIFY_CLIENT_INVALID_OPTION', message)
}

function positive (name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw invalid(`${name} must be a positive integer`)
  return value
}

function credential (name: string, value: unknown): CredentialSource | undefined {
  if (value !== undefined && typeof value !== 'function') throw invalid(`${name} must be a function`)
  return value as CredentialSource | undefined
}

function endpoint (value: unknown): URL {
  const url = typeof value === 'string' ? socketUrl(value) : null
  if (url === null) throw invalid('url must be a ws:, wss:, http: or https: URL')
  return url
}

function endpoints (url: NotifyClientOptions['url'], random = Math.random): () => Promise<URL> {
  if (typeof url === 'function') return async () => endpoint(await url())
  if (!Array.isArray(url)) {
    const one = endpoint(url)
    return async () => new URL(one)
  }
  if (url.length === 0) throw invalid('url must list at least one URL')
  const all = url.map(endpoint)
  // A random start, so that the clients of one page load do not all pick the first.
  let next = Math.floor(random() * all.length)
  return async () => new URL(all[next++ % all.length])
}

export function resolveOptions (opts: NotifyClientOptions): ResolvedOptions {
  if (opts === null || typeof opts !== 'object') throw invalid('options must be an object')
  const url = endpoints(opts.url)
  const transport = opts.transport ?? 'websocket'
  if (transport !== 'websocket' && transport !== 'sse' && transport !== 'auto') throw invalid('transport must be websocket, sse or auto')
  const EventSource = opts.EventSource ?? (globalThis as { EventSource?: EventSourceConstructor }).EventSource
  if (transport !== 'websocket' && typeof EventSource !== 'function') throw invalid('no global EventSource: pass one as the EventSource option')
  let sse: URL | null = null
  if (opts.sseUrl !== undefined) {
    sse = typeof opts.sseUrl === 'string' ? socketUrl(opts.sseUrl) : null
    if (sse === null) throw invalid('sseUrl must be an http: or https: URL')
  }
  const WebSocket = opts.WebSocket ?? (globalThis.WebSocket as WebSocketConstructor | undefined)
  if (typeof WebSocket !== 'function' && transport !== 'sse') {
    throw new NotifyClientError('NOTIFY_CLIENT_NO_WEBSOCKET', 'no global WebSocket: pass one as the WebSocket option (e.g. the ws package)')
  }
  const min = positive('backoff.min', opts.backoff?.min, 500)
  const max = positive('backoff.max', opts.backoff?.max, 20000)
  if (min > max) throw invalid('backoff.min must not exceed backoff.max')
  const drain = positive('backoff.drain', opts.backoff?.drain, 3000)
  return {
    url,
    getTicket: credential('getTicket', opts.getTicket),
    getToken: credential('getToken', opts.getToken),
    WebSocket,
    backoff: { min, max, drain },
    pingInterval: positive('pingInterval', opts.pingInterval, 25000),
    pingTimeout: positive('pingTimeout', opts.pingTimeout, 10000),
    connectTimeout: positive('connectTimeout', opts.connectTimeout, 10000),
    refreshBefore: positive('refreshBefore', opts.refreshBefore, 30000),
    transport,
    sseUrl: sse,
    EventSource
  }
}
