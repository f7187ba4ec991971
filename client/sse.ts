import type { WebSocketLike } from './socket.js'

/** The part of the browser's EventSource the client uses. */
export interface EventSourceLike {
  readonly readyState: number
  close (): void
  addEventListener (type: string, listener: (event: { data?: unknown, lastEventId?: string }) => void): void
}

export type EventSourceConstructor = new (url: string) => EventSourceLike

const CLOSED = 2
const OPEN = 1
const EXPIRED = 4001
const ABNORMAL = 1006
// The server's events; each carries the same JSON as the WebSocket frame of that name.
const EVENTS = ['welcome', 'subscribed', 'message', 'gap', 'error']

interface SocketEvent { data: unknown, code: number, reason: string }
type Listener = (event: SocketEvent) => void

/**
 * An SSE response shaped as the WebSocket the client drives (receive only). The server
 * subscribes the streams of the URL itself; the client's `subscribe` frame is answered from the
 * server's `subscribed` event, with the client's correlation id put back in, and its pings are
 * answered here (the server's comment lines keep the response alive, and EventSource itself
 * reconnects, with `Last-Event-ID`, after a drop). An `expired` event, or an EventSource that
 * gives up (a 401 once its ticket is used, a 503), closes this "socket": the client then
 * reconnects with a new credential, and `lastEventId` resumes every stream.
 */
export class SseSocket implements WebSocketLike {
  readyState = 0
  /** The id of the last event that had one: where every stream of the response stands. */
  lastEventId = ''
  readonly #source: EventSourceLike
  readonly #listeners = new Map<string, Listener[]>()
  #subscribeId: unknown = undefined

  constructor (url: string, EventSource: EventSourceConstructor, readonly streams: readonly string[]) {
    this.#source = new EventSource(url)
    for (const name of EVENTS) {
      this.#source.addEventListener(name, (event) => {
        if (typeof event.lastEventId === 'string' && event.lastEventId !== '') this.lastEventId = event.lastEventId
        this.readyState = OPEN
        let data = event.data
        if (name === 'subscribed' && this.#subscribeId !== undefined && typeof data === 'string') {
          data = JSON.stringify({ ...JSON.parse(data), id: this.#subscribeId })
        }
        this.#emit('message', { data, code: 0, reason: '' })
      })
    }
    this.#source.addEventListener('expired', () => this.#closed(EXPIRED, 'credential expired'))
    this.#source.addEventListener('error', () => {
      if (this.#source.readyState === CLOSED) this.#closed(ABNORMAL, 'event stream failed')
    })
  }

  send (data: string): void {
    const frame = JSON.parse(data) as { event: string, id?: unknown }
    if (frame.event === 'subscribe') this.#subscribeId = frame.id
    if (frame.event === 'ping') queueMicrotask(() => this.#emit('message', { data: JSON.stringify({ event: 'pong', id: frame.id }), code: 0, reason: '' }))
  }

  close (code = 1000, reason = ''): void {
    this.#closed(code, reason)
  }

  addEventListener (type: string, listener: Listener): void {
    const listeners = this.#listeners.get(type) ?? []
    listeners.push(listener)
    this.#listeners.set(type, listeners)
  }

  #closed (code: number, reason: string): void {
    if (this.readyState === 3) return
    this.readyState = 3
    this.#source.close()
    queueMicrotask(() => this.#emit('close', { data: undefined, code, reason }))
  }

  #emit (type: string, event: SocketEvent): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event)
  }
}

/** The SSE endpoint for a WebSocket one: `/ws` → `/sse`, any other path `p` → `p/sse`, http(s) scheme. */
export function sseUrl (socketUrl: URL): URL {
  const url = new URL(socketUrl.href)
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
  url.pathname = url.pathname === '/ws' ? '/sse' : `${url.pathname.replace(/\/$/, '')}/sse`
  url.search = ''
  return url
}
