import type { Socket } from 'node:net'
import * as ws from 'ws'
import type { WebSocket } from 'ws'

// Fan-out writes one frame to many sockets. Going through ws.send() costs a header allocation,
// an options object and a write syscall per socket and message; on a burst that is most of the
// server's time. Instead each message is framed once, and written straight to each socket's TCP
// stream, corked until a FlushScheduler uncorks it: a burst leaves in one write per socket, and so
// do the messages of consecutive turns under sustained traffic (one write per `flushInterval`).
// This leans on ws internals (checked in test/wire.test.ts): `_socket`, `_sender._bufferedBytes`
// and `_extensions`.

interface SenderStatic { frame (data: Buffer, options: object): Buffer[] }
interface WebSocketInternals {
  _socket: Socket | null
  _sender: { _bufferedBytes: number } | null
  _extensions: Record<string, unknown>
}

// ws exports its Sender at runtime; @types/ws does not declare it.
const { Sender } = ws as unknown as { Sender: SenderStatic }
const TEXT_FRAME = { fin: true, opcode: 0x01, mask: false, readOnly: false, rsv1: false }
const SEND_TEXT = { binary: false }
const OPEN = 1
const EVENT_END = Buffer.from('\n\n')
// A server's ping with no payload: FIN and opcode 0x9, unmasked, length 0. Never written to, so shared.
const PING_FRAME = Buffer.from([0x89, 0x00])
// A FrameWriter's socket: not corked, corked until the end of the job, held to the next tick, or
// held for an answer (`hold`); or never corked, its frames sent through ws.
const INDIRECT = -1
// A FrameWriter's last flush before it had any: any interval (at most 1000 ms) has passed since.
const NEVER = -(2 ** 30)
const IDLE = 0
const CORKED = 1
const HELD = 2
const PINNED = 3

/** A server → client text message, serialized and framed once for every socket that gets it. */
export class OutboundFrame {
  readonly payload: Buffer
  #wire: Buffer | null = null
  #eventStream: Buffer | null = null

  constructor (text: string) {
    this.payload = Buffer.from(text, 'utf8')
  }

  /** The payload as one Server-Sent Event, `event: message` (a `gap`'s `event: gap`): written to every SSE response. */
  get eventStream (): Buffer {
    if (this.#eventStream === null) {
      const event = this.payload.toString('latin1', 10, this.payload.indexOf(34, 10))
      this.#eventStream = Buffer.concat([Buffer.from(`event: ${event}\ndata: `), this.payload, EVENT_END])
    }
    return this.#eventStream
  }

  /** The complete unmasked WebSocket frame: header and payload in one Buffer. */
  get wire (): Buffer {
    if (this.#wire === null) this.#wire = Buffer.concat(Sender.frame(this.payload, TEXT_FRAME))
    return this.#wire
  }
}

/**
 * When corked sockets are written out, for every socket of one route.
 *
 * A socket is idle when it was last flushed `interval` ms ago or more, and not during the current
 * event-loop iteration: what it gets is written at the end of the current job (a microtask), so
 * a lone notification waits for nothing, and code that runs after the job (a terminate(), say)
 * finds it sent. A socket flushed more recently holds what it gets until the next tick of a timer
 * shared by all sockets of the route, and writes it in one go: under sustained traffic a socket
 * costs one write per tick instead of one per message. The iteration test matters when the
 * server is busy: fanning one message out can take longer than `interval`, and the publishes the
 * iteration still has to handle then coalesce instead of each paying a write per socket. With
 * `interval` 0 every socket is flushed at the end of every job, as before coalescing existed.
 *
 * Held frames wait for the tick even when the loop is too busy to run it on time: a busy server
 * is better off writing less often. Corked bytes count in `bufferedAmount`, so the slow-consumer
 * limit sees what waits; a socket holding `holdBytes` hands them to the kernel at once.
 */
export class FlushScheduler {
  readonly #soon: FrameWriter[] = []
  #later: FrameWriter[] = []
  #soonQueued = false
  #timer: NodeJS.Timeout | null = null
  // performance.now() once per job, not once per socket: a fan-out asks for it per socket.
  #now = -1
  // Counts event-loop iterations in which something was flushed (a setImmediate ends each).
  #iteration = 0
  #iterationEnds = false
  readonly #flushSoon = (): void => {
    this.#soonQueued = false
    const soon = this.#soon
    for (let i = 0; i < soon.length; i++) soon[i].flushDue()
    soon.length = 0
  }

  readonly #flushLater = (): void => {
    this.#timer = null
    const later = this.#later
    this.#later = []
    for (let i = 0; i < later.length; i++) later[i].flushDue()
  }

  readonly #forgetNow = (): void => { this.#now = -1 }
  readonly #endIteration = (): void => {
    this.#iteration++
    this.#iterationEnds = false
  }

  /**
   * @param interval ms a flushed socket holds later frames; 0 flushes every job.
   * @param holdBytes most bytes a socket holds; more are written at once.
   */
  constructor (readonly interval: number, readonly holdBytes: number) {}

  /** Sockets queued for the next tick. */
  get waiting (): number {
    return this.#later.length
  }

  now (): number {
    if (this.#now < 0) {
      this.#now = performance.now()
      queueMicrotask(this.#forgetNow)
    }
    return this.#now
  }

  /** The current iteration, for a socket being flushed in it. */
  iteration (): number {
    if (!this.#iterationEnds && this.interval > 0) {
      this.#iterationEnds = true
      setImmediate(this.#endIteration)
    }
    return this.#iteration
  }

  /** Whether a socket last flushed at `flushedAt`, in iteration `flushedIn`, is idle. */
  idle (flushedAt: number, flushedIn: number): boolean {
    return this.interval === 0 || (flushedIn !== this.#iteration && this.now() - flushedAt >= this.interval)
  }

  /** Adds a writer to flush at the end of the current job. */
  soon (writer: FrameWriter): void {
    this.#soon.push(writer)
    if (this.#soonQueued) return
    this.#soonQueued = true
    queueMicrotask(this.#flushSoon)
  }

  /** Adds a writer that holds its frames to the next tick. */
  later (writer: FrameWriter): void {
    this.#later.push(writer)
    if (this.#timer === null) {
      this.#timer = setTimeout(this.#flushLater, this.interval)
      this.#timer.unref()
    }
  }

  /** Flushes every waiting socket now and stops the timer (on close). */
  close (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#flushLater()
  }
}

/**
 * Writes frames to one WebSocket, bypassing ws's sender whenever that keeps frames in order. A
 * connection is one (it extends this class), so an idle connection is one object, not two.
 */
export class FrameWriter {
  readonly #scheduler: FlushScheduler
  // IDLE, CORKED or HELD; INDIRECT when an extension (permessage-deflate) rewrites frames: then
  // ws frames every message. One field for both: a connection keeps as few as it can.
  #state: number
  // Whole ms, rounded up (so a socket never counts as idle early): a fractional time would be a
  // boxed double, 16 bytes more per connection.
  #flushedAt = NEVER
  #flushedIn = -1

  constructor (readonly socket: WebSocket, scheduler: FlushScheduler) {
    this.#scheduler = scheduler
    const { _extensions: extensions, _sender: sender } = socket as WebSocket & WebSocketInternals
    const direct = extensions !== undefined && Object.keys(extensions).length === 0 && typeof sender?._bufferedBytes === 'number'
    this.#state = direct ? IDLE : INDIRECT
  }

  /**
   * Queues `frame`. Its bytes count in `socket.bufferedAmount` until the kernel takes them. Falls back
   * to ws.send() while ws's own sender holds queued frames, so nothing overtakes them. Whatever ws
   * itself writes meanwhile (pings, pongs, close frames) goes into the same corked stream, after.
   */
  write (frame: OutboundFrame): void {
    const socket = this.socket as WebSocket & WebSocketInternals
    const { _socket: tcp, _sender: sender } = socket
    if (this.#state === INDIRECT || socket.readyState !== OPEN || tcp === null || sender === null || sender._bufferedBytes !== 0) {
      socket.send(frame.payload, SEND_TEXT)
      return
    }
    const scheduler = this.#scheduler
    if (this.#state === IDLE) {
      tcp.cork()
      if (scheduler.idle(this.#flushedAt, this.#flushedIn)) {
        this.#state = CORKED
        scheduler.soon(this)
      } else {
        this.#state = HELD
        scheduler.later(this)
      }
    } else if (tcp.writableLength >= scheduler.holdBytes) {
      // Enough waits to be worth a write of its own: hand it to the kernel, keep corking.
      tcp.uncork()
      tcp.cork()
    }
    tcp.write(frame.wire)
  }

  /**
   * A protocol ping. ws's ping() frames it anew (a header Buffer, an options object, a corked
   * two-chunk writev of header and empty payload); an empty ping's frame is always the same two
   * bytes, so it is written from one shared Buffer, behind whatever is corked. Through ws when its
   * sender holds queued frames or an extension rewrites frames, as `write` does.
   */
  ping (): void {
    const socket = this.socket as WebSocket & WebSocketInternals
    const { _socket: tcp, _sender: sender } = socket
    if (this.#state === INDIRECT || socket.readyState !== OPEN || tcp === null || sender === null || sender._bufferedBytes !== 0) {
      socket.ping()
      return
    }
    tcp.write(PING_FRAME)
  }

  /**
   * Sends a frame that is no fan-out (an answer, an error) at once, behind whatever is corked for
   * this socket. With something corked (a chat sender's own copy of its message, say, before its
   * `published`), the frame joins it and both leave in one write instead of two; with nothing
   * corked, ws sends it as usual.
   */
  sendNow (text: string): void {
    if (this.#state <= IDLE) {
      this.socket.send(text)
      return
    }
    this.write(new OutboundFrame(text))
    this.flush()
  }

  /**
   * Holds what this socket is written from now on, scheduled flushes included, until `sendNow()`
   * or `release()`: a client's publish holds its socket while it is published, so that its own
   * copy of the message (on this instance's bus, delivered before the publish is answered) and its
   * `published` leave in one write instead of two. Through ws (an extension): nothing is held.
   */
  hold (): void {
    const tcp = (this.socket as WebSocket & WebSocketInternals)._socket
    if (this.#state === INDIRECT || tcp === null) return
    if (this.#state === IDLE) tcp.cork()
    this.#state = PINNED
  }

  /** Ends a `hold()` not ended by a `sendNow()`: what it held goes now. */
  release (): void {
    if (this.#state === PINNED) this.flush()
  }

  /** The scheduler's flush: a socket held for an answer (`hold`) waits for it instead. */
  flushDue (): void {
    if (this.#state !== PINNED) this.flush()
  }

  /** Hands what is corked to the kernel now: before a close, an answer, or when scheduled. */
  flush (): void {
    if (this.#state <= IDLE) return
    this.#state = IDLE
    this.#flushedAt = Math.ceil(this.#scheduler.now())
    this.#flushedIn = this.#scheduler.iteration()
    ;(this.socket as WebSocket & WebSocketInternals)._socket?.uncork()
  }
}
