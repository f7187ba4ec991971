import type { AnyStreams, StreamData, StreamName } from '../plugins/typed.js'
import type { AnyMethods, MethodName, MethodRequest, MethodResponse } from '../plugins/typed-methods.js'
import { backoffDelay } from './backoff.js'
import { CLOSE, retryAfterDelay, retryDelay } from './close-codes.js'
import { Emitter } from './emitter.js'
import { NotifyClientError, type ServerErrorCode } from './errors.js'
import { resolveOptions, type CredentialSource, type NotifyClientOptions, type ResolvedOptions } from './options.js'
import { Requests } from './requests.js'
import { OPEN, type WebSocketLike } from './socket.js'
import { Subscriptions, type MessageHandler, type NotifyMessage } from './subscriptions.js'
import { SseSocket, sseUrl } from './sse.js'

/** `connecting` until the first `connected`; `reconnecting` after a loss; `closed` for good. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface ConnectedEvent {
  connection: string
  /** null on an anonymous endpoint. */
  user: string | null
  /** When the server will close the connection with 4001 unless refreshed; ms since the epoch. */
  expiresAt: number | null
  /** false the first time, true after every reconnect. */
  reconnect: boolean
}

export interface DisconnectedEvent {
  /** The close code; 1006 also when this client gave up on a silent server. */
  code: number
  reason: string
  willRetry: boolean
  /** ms until the next attempt; null when not retrying. */
  delay: number | null
}

export interface NotifyClientEvents {
  /** The server welcomed the socket and every subscription is active again. */
  connected: ConnectedEvent
  /** A socket closed. */
  disconnected: DisconnectedEvent
  /** The server accepted these streams: messages published from now on will arrive. */
  subscribed: { streams: string[] }
  /**
   * Messages of this stream were lost and cannot be replayed: on resume, history no longer
   * reached back to the last message seen; on an open socket, the server lost live messages (a
   * Redis blip) that history could not fill. Refetch this stream's state.
   */
  gap: { stream: string }
  /** The server accepted a `refresh`. */
  refreshed: { expiresAt: number }
  /** A user's first connection subscribed to a channel key with member presence (`room:lobby`). */
  join: { stream: string, user: string }
  /** A user's last connection left a channel key with member presence. */
  leave: { stream: string, user: string }
  state: ConnectionState
  error: NotifyClientError
}

type ServerFrame = Record<string, unknown> & { event: string }
type Welcome = Omit<ConnectedEvent, 'reconnect'>

// setTimeout cannot wait longer than this.
const MAX_TIMER_MS = 2 ** 31 - 1

function parseFrame (data: unknown): ServerFrame | null {
  if (typeof data !== 'string') return null
  try {
    const value: unknown = JSON.parse(data)
    if (value !== null && typeof value === 'object' && typeof (value as ServerFrame).event === 'string') return value as ServerFrame
  } catch {}
  return null
}

async function credential (source: CredentialSource, name: string): Promise<string> {
  const value = await source()
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${name}() must resolve to a non-empty string`)
  return value
}

/** What `publish()` resolves with. */
export interface Published {
  /** The message id, as subscribers receive it. */
  id: string
  /** True when the idempotency key had published already: `id` is that first publish's. */
  replayed: boolean
}

/** Options of one `publish()` or `rpc()`. */
export interface RequestOptions {
  /** ms to wait for the answer before rejecting with `NOTIFY_CLIENT_TIMEOUT`. @default 10000 */
  timeout?: number
}

/** A stream name, or a channel key of it (`room:lobby`). */
type Target<Name extends string> = Name | `${Name}:${string}`

/**
 * A notify-edge connection that reconnects, resubscribes and resumes by itself. `Streams` is the
 * server's declaration (`typeof streams`, type only): it types stream names and each one's data;
 * `Methods` (`typeof methods`) types `rpc()`.
 */
export class NotifyClient<Streams = AnyStreams, Methods = AnyMethods> {
  readonly #requests = new Requests()
  readonly #opts: ResolvedOptions
  readonly #events = new Emitter<NotifyClientEvents>()
  readonly #subscriptions = new Subscriptions()
  #state: ConnectionState = 'connecting'
  #socket: WebSocketLike | null = null
  #welcome: Welcome | null = null
  #restoreId: string | null = null
  #attempt = 0
  #everConnected = false
  #seq = 0
  #retryTimer: ReturnType<typeof setTimeout> | null = null
  #watchdog: ReturnType<typeof setTimeout> | null = null
  // Whether the server was heard from (a frame, a protocol ping) since the last ping interval began.
  #heard = false
  #refreshTimer: ReturnType<typeof setTimeout> | null = null
  #pingTimer: ReturnType<typeof setInterval> | null = null
  #onClosed: (() => void) | null = null
  // What the last refused handshake's Retry-After asked for (Node's ws only: browsers hide it).
  #retryAfter: number | null = null

  // SSE: in use (transport 'sse', or 'auto' once a WebSocket could not be opened), and where the last response stood.
  #sse = false
  #sseResume: { streams: string, lastEventId: string } | null = null
  #opening = false
  #sseStale = false

  constructor (options: NotifyClientOptions) {
    this.#opts = resolveOptions(options)
    this.#sse = this.#opts.transport === 'sse'
    this.#open()
  }

  get state (): ConnectionState {
    return this.#state
  }

  /** Adds an event listener; returns the function that removes it. */
  on<K extends keyof NotifyClientEvents> (event: K, listener: (payload: NotifyClientEvents[K]) => void): () => void {
    return this.#events.on(event, listener)
  }

  off<K extends keyof NotifyClientEvents> (event: K, listener: (payload: NotifyClientEvents[K]) => void): void {
    this.#events.off(event, listener)
  }

  /** Calls `handler` with each new message of `stream`, across reconnects; returns the unsubscribe function. */
  subscribe<Name extends StreamName<Streams>> (stream: Name, handler: MessageHandler<StreamData<Streams, Name>>): () => void {
    if (typeof stream !== 'string' || stream.length === 0) throw new NotifyClientError('NOTIFY_CLIENT_INVALID_ARGUMENT', 'stream must be a non-empty string')
    if (typeof handler !== 'function') throw new NotifyClientError('NOTIFY_CLIENT_INVALID_ARGUMENT', 'handler must be a function')
    // A wrapper per call, so that subscribing the same function twice needs two unsubscribes.
    const entry = (message: NotifyMessage<StreamData<Streams, Name>>): void => handler(message)
    if (this.#subscriptions.add(stream, entry)) {
      if (this.#sse) this.#sseStreamsChanged()
      else if (this.#welcome !== null) this.#send({ event: 'subscribe', streams: [stream], id: this.#nextId('s') })
    }
    return () => {
      if (this.#subscriptions.remove(stream, entry) && this.#welcome !== null) {
        this.#send({ event: 'unsubscribe', streams: [stream], id: this.#nextId('u') })
      }
    }
  }

  /**
   * Publishes `data` to a stream that lets clients publish (SPEC section 13); resolves with the
   * message id once the edge has published it. Needs an open connection; never sent twice: a
   * connection lost before the answer rejects with `NOTIFY_CLIENT_DISCONNECTED` (give an
   * `idempotencyKey` to retry safely). Refusals reject with the server's code (`FORBIDDEN` with
   * the hook's `reason`, `RATE_LIMITED`, `BAD_REQUEST`, …).
   */
  publish<Name extends StreamName<Streams>> (stream: Target<Name>, data: StreamData<Streams, Name>, options: RequestOptions & { idempotencyKey?: string } = {}): Promise<Published> {
    return this.#request({ event: 'publish', stream, data, idempotencyKey: options.idempotencyKey }, 'c', options)
      .then((frame) => ({ id: String(frame.message), replayed: frame.replayed === true }))
  }

  /**
   * Calls a method declared on the server; resolves with its route's answer, or rejects with
   * `RPC_FAILED` (and the route's `status`), `UNKNOWN_METHOD`, `TIMEOUT`, `FORBIDDEN`, … As
   * `publish`, a call is never sent twice.
   */
  rpc<Name extends MethodName<Methods>> (method: Name, data?: MethodRequest<Methods, Name>, options: RequestOptions = {}): Promise<MethodResponse<Methods, Name>> {
    return this.#request({ event: 'rpc', method, data }, 'c', options).then((frame) => frame.data as MethodResponse<Methods, Name>)
  }

  #request (frame: Record<string, unknown>, prefix: string, options: RequestOptions): Promise<Record<string, unknown>> {
    if (this.#welcome === null || this.#socket?.readyState !== OPEN) {
      return Promise.reject(new NotifyClientError('NOTIFY_CLIENT_NOT_CONNECTED', 'the connection is not open'))
    }
    // An SSE response only receives: nothing could carry the frame, so no answer would come.
    if (this.#sse) return Promise.reject(new NotifyClientError('NOTIFY_CLIENT_NOT_CONNECTED', 'an SSE connection only receives: publish and rpc need a WebSocket'))
    const timeout = options.timeout ?? 10_000
    if (typeof timeout !== 'number' || !(timeout > 0)) return Promise.reject(new NotifyClientError('NOTIFY_CLIENT_INVALID_ARGUMENT', 'timeout must be a positive number'))
    const id = this.#nextId(prefix)
    const answer = this.#requests.wait(id, timeout)
    this.#send({ ...frame, id })
    return answer
  }

  /** Closes the connection for good; resolves once the socket has closed. */
  close (): Promise<void> {
    this.#setState('closed')
    this.#clearTimers()
    const socket = this.#socket
    if (socket === null) return Promise.resolve()
    return new Promise((resolve) => {
      const previous = this.#onClosed
      this.#onClosed = () => { previous?.(); resolve() }
      socket.close(CLOSE.NORMAL, 'client closed')
    })
  }

  /** SSE names its streams in the URL: a new one opens a new response (also the first, on an SSE client with none yet). */
  #sseStreamsChanged (): void {
    if (this.#state === 'closed') return
    if (this.#opening) this.#sseStale = true
    else if (this.#socket !== null) this.#socket.close(CLOSE.NORMAL, 'streams changed')
    else if (this.#retryTimer === null) this.#open()
  }

  async #openSse (): Promise<WebSocketLike | null> {
    if (this.#subscriptions.requests().length === 0) return null
    const url = sseUrl(this.#opts.sseUrl ?? await this.#opts.url())
    const { getTicket, getToken } = this.#opts
    if (getToken !== undefined) {
      // An access token survives EventSource's own reconnects; a ticket does not.
      const res = await fetch(`${url.origin}${url.pathname}/access`, { method: 'POST', headers: { authorization: `Bearer ${await credential(getToken, 'getToken')}` } })
      if (res.status !== 200) throw new Error(`POST ${url.pathname}/access answered ${res.status}`)
      url.searchParams.set('access', ((await res.json()) as { access: string }).access)
    } else if (getTicket !== undefined) {
      url.searchParams.set('ticket', await credential(getTicket, 'getTicket'))
    }
    // The streams wanted now, after the credential's round trip: those subscribed meanwhile too.
    const streams = this.#subscriptions.requests().map((request) => typeof request === 'string' ? request : request.stream)
    if (streams.length === 0) return null
    url.searchParams.set('streams', streams.join(','))
    if (this.#sseResume?.streams === url.searchParams.get('streams') && this.#sseResume.lastEventId !== '') {
      url.searchParams.set('lastEventId', this.#sseResume.lastEventId)
    }
    if (this.#state === 'closed') return null
    return new SseSocket(url.href, this.#opts.EventSource!, streams)
  }

  async #open (): Promise<void> {
    this.#opening = true
    this.#sseStale = false
    try {
      await this.#openOne()
    } finally {
      this.#opening = false
    }
    if (this.#sseStale) this.#sseStreamsChanged()
  }

  async #openOne (): Promise<void> {
    this.#retryTimer = null
    let socket: WebSocketLike
    try {
      const opened = this.#sse ? await this.#openSse() : await this.#openWebSocket()
      if (opened === null) return
      socket = opened
    } catch (err) {
      if (this.#state === 'closed') return
      this.#error(new NotifyClientError('NOTIFY_CLIENT_CREDENTIAL_FAILED', 'could not get a credential or open a socket', { cause: err }))
      this.#retry(backoffDelay(this.#attempt, this.#opts.backoff))
      return
    }
    this.#listen(socket)
  }

  async #openWebSocket (): Promise<WebSocketLike | null> {
    const url = await this.#opts.url()
    const { getTicket, getToken } = this.#opts
    if (getTicket !== undefined) url.searchParams.set('ticket', await credential(getTicket, 'getTicket'))
    else if (getToken !== undefined) url.searchParams.set('token', await credential(getToken, 'getToken'))
    if (this.#state === 'closed') return null
    return new this.#opts.WebSocket!(url.href)
  }

  #listen (socket: WebSocketLike): void {
    this.#socket = socket
    this.#armWatchdog(this.#opts.connectTimeout, 'no welcome within connectTimeout')
    // A close event follows every error; `ws` throws when an error has no listener.
    this.#watchRefusal(socket)
    socket.addEventListener('error', () => {})
    socket.addEventListener('message', (event) => { if (this.#socket === socket) this.#onFrame(event.data) })
    socket.addEventListener('close', (event) => { if (this.#socket === socket) this.#onClose(event.code, event.reason) })
    // Node's `ws` shows the server's protocol pings, which prove it alive as a frame does; a browser's WebSocket hides them.
    const node = socket as unknown as { on?: (event: 'ping', listener: () => void) => void }
    if (typeof node.on === 'function') node.on('ping', () => { if (this.#socket === socket) this.#heard = true })
  }

  /**
   * An instance at its cap refuses the handshake with 503 and `Retry-After` (SPEC section 15).
   * A browser's WebSocket shows none of it (a 1006 close, and backoff); Node's `ws` emits the
   * response, which is read here, then the handshake is ended as ws would end it.
   */
  #watchRefusal (socket: WebSocketLike): void {
    type Refused = { statusCode?: number, headers: Record<string, unknown> }
    const node = socket as unknown as { once?: (event: string, listener: (request: unknown, response: Refused) => void) => void, terminate?: () => void }
    if (typeof node.once !== 'function' || typeof node.terminate !== 'function') return
    node.once('unexpected-response', (_request, response) => {
      this.#retryAfter = retryAfterDelay(response.headers['retry-after'])
      node.terminate!()
    })
  }

  #retry (delay: number): void {
    this.#attempt++
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting')
    this.#retryTimer = setTimeout(() => { this.#open() }, delay)
  }

  #onClose (code: number, reason: string): void {
    const socket = this.#socket
    if (socket instanceof SseSocket) this.#sseResume = { streams: socket.streams.join(','), lastEventId: socket.lastEventId }
    // 'auto': a WebSocket that closed before its welcome could not be opened (a proxy that strips Upgrade): SSE from now on.
    else if (this.#opts.transport === 'auto' && this.#welcome === null) this.#sse = true
    this.#socket = null
    this.#welcome = null
    this.#restoreId = null
    this.#clearTimers()
    this.#requests.failAll()
    let delay = this.#state === 'closed' ? null : retryDelay(code, this.#attempt, this.#opts.backoff)
    if (delay !== null && this.#retryAfter !== null) delay = Math.max(delay, this.#retryAfter)
    this.#retryAfter = null
    if (delay === null) this.#setState('closed')
    else this.#retry(delay)
    this.#emit('disconnected', { code, reason, willRetry: delay !== null, delay })
    const closed = this.#onClosed
    this.#onClosed = null
    closed?.()
  }

  /** Gives up on a socket that went silent: reported as 1006, like any connection lost without a close frame. */
  #abandon (reason: string): void {
    const socket = this.#socket
    if (socket === null) return
    this.#onClose(CLOSE.ABNORMAL, reason)
    if (socket.terminate !== undefined) socket.terminate()
    else socket.close(CLOSE.CLIENT_TIMEOUT, reason)
  }

  #onFrame (data: unknown): void {
    // Any frame shows the server is alive.
    this.#clearWatchdog()
    this.#heard = true
    const frame = parseFrame(data)
    if (frame === null) {
      this.#error(new NotifyClientError('NOTIFY_CLIENT_BAD_FRAME', 'the server sent a frame that is not a JSON object with an event'))
      return
    }
    // The answer to a publish or a call (errors included) goes to whoever awaits it.
    if ((frame.event === 'published' || frame.event === 'result' || frame.event === 'error') && this.#requests.settle(frame)) return
    switch (frame.event) {
      case 'welcome': return this.#onWelcome(frame)
      case 'subscribed': return this.#onSubscribed(frame)
      case 'message': return this.#onMessage(frame)
      case 'refreshed': return this.#onRefreshed(frame)
      case 'gap': return this.#gaps(frame.streams)
      case 'join':
      case 'leave': return this.#emit(frame.event, { stream: String(frame.stream), user: String(frame.user) })
      case 'error': return this.#error(new NotifyClientError(frame.code as ServerErrorCode, String(frame.message), {
        stream: typeof frame.stream === 'string' ? frame.stream : undefined
      }))
    }
    // pong, unsubscribed and events of later protocol versions need nothing more.
  }

  #onWelcome (frame: ServerFrame): void {
    this.#welcome = {
      connection: String(frame.connection),
      user: typeof frame.user === 'string' ? frame.user : null,
      expiresAt: typeof frame.expiresAt === 'number' ? frame.expiresAt : null
    }
    this.#pingTimer = setInterval(() => this.#ping(), this.#opts.pingInterval)
    this.#scheduleRefresh(this.#welcome.expiresAt)
    const streams = this.#subscriptions.requests()
    if (streams.length === 0) return this.#connected()
    this.#restoreId = this.#nextId('r')
    this.#send({ event: 'subscribe', streams, id: this.#restoreId })
  }

  #gaps (streams: unknown): void {
    for (const stream of Array.isArray(streams) ? streams : []) {
      if (typeof stream === 'string') this.#emit('gap', { stream })
    }
  }

  #onSubscribed (frame: ServerFrame): void {
    this.#gaps(frame.gaps)
    const streams = Array.isArray(frame.streams) ? frame.streams.filter((s) => typeof s === 'string') : []
    const positions = typeof frame.positions === 'object' && frame.positions !== null ? frame.positions as Record<string, unknown> : {}
    for (const stream of streams) this.#subscriptions.accept(stream, positions[stream])
    this.#emit('subscribed', { streams })
    if (this.#restoreId !== null && frame.id === this.#restoreId) {
      this.#restoreId = null
      this.#connected()
    }
  }

  #connected (): void {
    this.#attempt = 0
    const reconnect = this.#everConnected
    this.#everConnected = true
    this.#setState('open')
    this.#emit('connected', { ...this.#welcome!, reconnect })
  }

  #onMessage (frame: ServerFrame): void {
    const { stream, id, ts, data, from } = frame
    if (typeof stream !== 'string' || typeof id !== 'string') {
      this.#error(new NotifyClientError('NOTIFY_CLIENT_BAD_FRAME', 'a message frame without stream or id'))
      return
    }
    const message: NotifyMessage = { stream, id, ts: typeof ts === 'number' ? ts : Date.now(), data }
    if (typeof from === 'string') message.from = from
    for (const err of this.#subscriptions.deliver(message)) this.#handlerFailed(err)
  }

  #onRefreshed (frame: ServerFrame): void {
    if (typeof frame.expiresAt !== 'number') return
    this.#scheduleRefresh(frame.expiresAt)
    this.#emit('refreshed', { expiresAt: frame.expiresAt })
  }

  /**
   * Pings a server not heard from since the last interval. One that was (a frame, or in Node a
   * protocol ping) needs no proof now, and the server, seeing our frames, leaves its own pings
   * out: one round trip per interval between them, not two.
   */
  #ping (): void {
    if (this.#heard) {
      this.#heard = false
      return
    }
    if (this.#watchdog === null) this.#armWatchdog(this.#opts.pingTimeout, 'no pong within pingTimeout')
    this.#send({ event: 'ping', id: this.#nextId('p') })
  }

  #scheduleRefresh (expiresAt: number | null): void {
    if (this.#refreshTimer !== null) clearTimeout(this.#refreshTimer)
    this.#refreshTimer = null
    if (expiresAt === null || this.#opts.getToken === undefined) return
    const left = expiresAt - Date.now()
    const delay = Math.max(0, left - Math.min(this.#opts.refreshBefore, left / 2))
    // A lifetime beyond a timer's reach is refreshed early, which is harmless.
    this.#refreshTimer = setTimeout(() => { this.#refresh(this.#opts.getToken!) }, Math.min(delay, MAX_TIMER_MS))
  }

  // Without a new token the server closes with 4001 at expiry, and the reconnect asks again.
  async #refresh (getToken: CredentialSource): Promise<void> {
    this.#refreshTimer = null
    const socket = this.#socket
    let token: string
    try {
      token = await credential(getToken, 'getToken')
    } catch (err) {
      this.#error(new NotifyClientError('NOTIFY_CLIENT_CREDENTIAL_FAILED', 'could not get a token to refresh the connection', { cause: err }))
      return
    }
    if (this.#socket === socket) this.#send({ event: 'refresh', token, id: this.#nextId('f') })
  }

  #send (frame: Record<string, unknown>): void {
    if (this.#socket?.readyState === OPEN) this.#socket.send(JSON.stringify(frame))
  }

  #nextId (prefix: string): string {
    return `${prefix}${++this.#seq}`
  }

  #armWatchdog (ms: number, reason: string): void {
    this.#clearWatchdog()
    this.#watchdog = setTimeout(() => this.#abandon(reason), ms)
  }

  #clearWatchdog (): void {
    if (this.#watchdog !== null) clearTimeout(this.#watchdog)
    this.#watchdog = null
  }

  #clearTimers (): void {
    this.#clearWatchdog()
    if (this.#pingTimer !== null) clearInterval(this.#pingTimer)
    if (this.#refreshTimer !== null) clearTimeout(this.#refreshTimer)
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer)
    this.#pingTimer = this.#refreshTimer = this.#retryTimer = null
  }

  #setState (state: ConnectionState): void {
    if (this.#state === state) return
    this.#state = state
    this.#emit('state', state)
  }

  #emit<K extends Exclude<keyof NotifyClientEvents, 'error'>> (event: K, payload: NotifyClientEvents[K]): void {
    for (const err of this.#events.emit(event, payload)) this.#handlerFailed(err)
  }

  #handlerFailed (err: unknown): void {
    this.#error(new NotifyClientError('NOTIFY_CLIENT_HANDLER_FAILED', 'a handler or listener threw', { cause: err }))
  }

  // What an error listener throws has nowhere left to go.
  #error (err: NotifyClientError): void {
    this.#events.emit('error', err)
  }
}
