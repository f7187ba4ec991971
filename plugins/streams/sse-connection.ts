import { EventEmitter } from 'node:events'
import type { WebSocket } from 'ws'
import type { BusMessage } from '../bus/index.js'
import type { Principal } from '../principal.js'
import { CLOSE, Connection, type RouteContext } from './connection.js'
import { EventIds } from './sse-tokens.js'
import type { FlushScheduler, OutboundFrame } from './wire.js'

const OPEN = 1
const CLOSING = 2
const CLOSED = 3
// Every frame the server builds starts with its event name (protocol.ts `frame`, message.ts).
const EVENT_AT = '{"event":"'.length
const MESSAGE_HEAD = '{"event":"message","stream":"'
const ID_HEAD = '","id":"'
const COMMENT = ':\n\n'

/** What an SSE response needs of @fastify/sse's reply decorator. */
interface SseReply {
  close (): void
}

/** Where events are written: HTTP/1.1's TCP socket, or the HTTP/2 response. */
export interface EventSink extends EventEmitter {
  write (chunk: string | Buffer): boolean
  readonly writableLength: number
  cork?: () => void
  uncork?: () => void
}

/** The raw response, whatever the HTTP version: what both ServerResponse and Http2ServerResponse offer. */
interface RawResponse extends EventEmitter {
  destroy (): void
}

/** An event's name, from the head of a frame the server built. */
function eventName (text: string): string {
  return text.slice(EVENT_AT, text.indexOf('"', EVENT_AT))
}

/**
 * One SSE response, shaped as the part of a `ws` WebSocket that `Connection` uses, so that an SSE
 * response subscribes, resumes, is authorized, limited, counted, repaired, drained and expires on
 * exactly the WebSocket code path: its one inbound frame is the `subscribe` the route makes from
 * `streams=`. It also keeps the position of each stream of the response, for the events' `id`.
 */
export class SseSocket extends EventEmitter {
  readonly OPEN = OPEN
  readyState = OPEN
  /** Where events go, and where `Missed` waits for 'drain' (ws keeps its TCP socket under this name). */
  readonly _socket: EventSink
  readonly #raw: RawResponse
  #corked = false
  // Bus topic → index in `names`, once subscribed.
  #topics = new Map<string, number>()

  constructor (
    private readonly sse: SseReply,
    raw: RawResponse,
    sink: EventSink,
    /** The streams the response asked for, in order: the positions' order. */
    readonly names: readonly string[],
    readonly seal: string,
    /** Per stream: the id of the last message written, or `''`. */
    readonly positions: string[],
    private readonly retry: number
  ) {
    super()
    this._socket = sink
    this.#raw = raw
    raw.once('close', () => {
      this.readyState = CLOSED
      this.emit('close')
    })
  }

  /** Bytes written and not yet taken by the kernel (or the HTTP/2 stream's window). */
  get bufferedAmount (): number {
    return this._socket.writableLength
  }

  /** The id of the next event: where every stream stands. */
  get eventId (): string {
    return EventIds.format(this.seal, this.positions)
  }

  /** Learns the topic of each stream, to place messages (after every `subscribed`). */
  subscribed (topics: ReadonlyMap<string, string>): void {
    this.#topics = new Map()
    for (const [name, topic] of topics) {
      const at = this.names.indexOf(name)
      if (at >= 0) this.#topics.set(topic, at)
    }
  }

  /** A message from live fan-out: its `id:`, then the event every response shares. */
  message (message: BusMessage, event: Buffer): void {
    if (this.readyState !== OPEN) return
    const at = this.#topics.get(message.topic)
    if (at !== undefined) this.positions[at] = message.id
    this._socket.write(`id: ${this.eventId}\n`)
    this._socket.write(event)
  }

  /**
   * What `Connection` and `Resume` send as text: control frames, and the messages a resume
   * replays (rare, so they are read back for their stream and id).
   */
  send (data: string | Buffer): void {
    if (this.readyState !== OPEN) return
    const text = typeof data === 'string' ? data : data.toString('utf8')
    const event = eventName(text)
    let id: string | undefined
    if (event === 'message' && text.startsWith(MESSAGE_HEAD)) {
      const nameEnd = text.indexOf(ID_HEAD, MESSAGE_HEAD.length)
      const at = this.names.indexOf(text.slice(MESSAGE_HEAD.length, nameEnd))
      if (at >= 0) this.positions[at] = text.slice(nameEnd + ID_HEAD.length, text.indexOf('"', nameEnd + ID_HEAD.length))
      id = this.eventId
    } else if (event === 'subscribed') {
      id = this.eventId
    }
    // The welcome event also tells EventSource how long to wait before reconnecting.
    this.#event(event, text, id, event === 'welcome' ? this.retry : undefined)
  }

  /**
   * Writes one control event. Not through @fastify/sse's `send()`, which costs a promise and, under
   * backpressure, two listeners per event: a slow reader's events would pile listeners up. The
   * server's frames are one line of JSON, so the event is `id`, `event`, one `data` line and `retry`.
   */
  #event (event: string, data: string, id?: string, retry?: number): void {
    this._socket.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n${retry === undefined ? '' : `retry: ${retry}\n`}\n`)
  }

  /** A comment line: keeps proxies from timing the response out. */
  comment (): void {
    if (this.readyState === OPEN && !this.#corked) this._socket.write(COMMENT)
  }

  /** Holds writes until `uncork()`; true when this call corked. */
  cork (): boolean {
    if (this.#corked || this._socket.cork === undefined) return false
    this._socket.cork()
    this.#corked = true
    return true
  }

  get corked (): boolean {
    return this.#corked
  }

  uncork (): void {
    if (!this.#corked) return
    this.#corked = false
    this._socket.uncork!()
  }

  /**
   * Ends the response the way the WebSocket close `code` would end a socket: an expired
   * credential says so (`expired`) before the end, a drain asks for a reconnect after a random
   * pause (so that clients spread over the other instances); a slow consumer or an internal error
   * cuts the response, and the browser reconnects with the last event it received.
   */
  close (code: number, _reason?: string): void {
    if (this.readyState !== OPEN) return
    this.uncork()
    this.readyState = CLOSING
    if (code === CLOSE.TRY_AGAIN_LATER || code === CLOSE.INTERNAL) return this.terminate()
    if (code === CLOSE.EXPIRED) {
      this.#event('expired', '{"event":"expired","message":"credential expired"}')
    } else if (code === CLOSE.GOING_AWAY) {
      this._socket.write(`retry: ${Math.round(this.retry * (1 + Math.random()))}\n\n`)
    }
    this.sse.close()
  }

  terminate (): void {
    this.readyState = CLOSING
    this.#raw.destroy()
  }
}

/**
 * A `Connection` whose socket is an `SseSocket`. Live messages are written as the shared event
 * of their `OutboundFrame` after a per-response `id:` line, corked until the end of the job, as
 * a WebSocket's frames are.
 */
export class SseConnection extends Connection {
  #frame: OutboundFrame | null = null
  #message: BusMessage | null = null
  readonly #flushes: FlushScheduler
  // When and in which event-loop iteration the response was last flushed (see FrameWriter).
  #flushedAt = -(2 ** 30)
  #flushedIn = -1

  constructor (socket: SseSocket, principal: Principal, ctx: RouteContext) {
    super(socket as unknown as WebSocket, principal, ctx)
    this.#flushes = ctx.flushes
  }

  get #sse (): SseSocket {
    return this.socket as unknown as SseSocket
  }

  override deliver (outbound: OutboundFrame, message: BusMessage): void {
    this.#frame = outbound
    this.#message = message
    try {
      super.deliver(outbound, message)
    } finally {
      this.#frame = null
      this.#message = null
    }
  }

  override write (frame: OutboundFrame): void {
    const sse = this.#sse
    if (frame !== this.#frame || this.#message === null) return sse.send(frame.payload)
    const flushes = this.#flushes
    if (sse.cork()) {
      // As FrameWriter does: an idle response writes at the end of the job, one written to less
      // than the route's flushInterval ago holds its events until the next tick.
      if (flushes.idle(this.#flushedAt, this.#flushedIn)) flushes.soon(this)
      else flushes.later(this)
    } else if (sse.bufferedAmount >= flushes.holdBytes) {
      sse.uncork()
      sse.cork()
    }
    sse.message(this.#message, frame.eventStream)
  }

  override flush (): void {
    // Called from Connection's constructor too, before this class's fields exist.
    const sse = this.socket as unknown as SseSocket
    if (!sse.corked) return
    sse.uncork()
    this.#flushedAt = Math.ceil(this.#flushes.now())
    this.#flushedIn = this.#flushes.iteration()
  }

  override send (text: string): void {
    const sse = this.socket as unknown as SseSocket
    sse.uncork()
    if (eventName(text) === 'subscribed') sse.subscribed(this.topics)
    sse.send(text)
  }

  override close (code: number, reason: string): void {
    this.#sse.close(code, reason)
  }
}
