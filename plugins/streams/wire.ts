import type { Socket } from 'node:net'
import * as ws from 'ws'
import type { WebSocket } from 'ws'

// Fan-out writes one frame to many sockets. Going through ws.send() costs a header allocation,
// an options object and a write syscall per socket and message; on a burst that is most of the
// server's time. Instead each message is framed once, and written straight to each socket's TCP
// stream, corked until the current job ends (a microtask) so a burst leaves in one write per socket.
// Not later: code that runs after the job (a terminate(), say) must find the frames already sent.
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

/** A server → client text message, serialized and framed once for every socket that gets it. */
export class OutboundFrame {
  readonly payload: Buffer
  #wire: Buffer | null = null

  constructor (text: string) {
    this.payload = Buffer.from(text, 'utf8')
  }

  /** The complete unmasked WebSocket frame: header and payload in one Buffer. */
  get wire (): Buffer {
    if (this.#wire === null) this.#wire = Buffer.concat(Sender.frame(this.payload, TEXT_FRAME))
    return this.#wire
  }
}

const corked: Socket[] = []
let uncorkQueued = false

function uncorkAll (): void {
  uncorkQueued = false
  for (let i = 0; i < corked.length; i++) corked[i].uncork()
  corked.length = 0
}

/** Writes frames to one WebSocket, bypassing ws's sender whenever that keeps frames in order. */
export class FrameWriter {
  readonly #socket: WebSocket
  readonly #internals: WebSocketInternals
  /** False when an extension (permessage-deflate) rewrites frames: then ws frames every message. */
  readonly #direct: boolean

  constructor (socket: WebSocket) {
    this.#socket = socket
    this.#internals = socket as unknown as WebSocketInternals
    const { _extensions: extensions, _sender: sender } = this.#internals
    this.#direct = extensions !== undefined && Object.keys(extensions).length === 0 && typeof sender?._bufferedBytes === 'number'
  }

  /**
   * Queues `frame`. Its bytes count in `socket.bufferedAmount` until the kernel takes them. Falls back
   * to ws.send() while ws's own sender holds queued frames, so nothing overtakes them.
   */
  write (frame: OutboundFrame): void {
    const { _socket: tcp, _sender: sender } = this.#internals
    if (!this.#direct || this.#socket.readyState !== OPEN || tcp === null || sender === null || sender._bufferedBytes !== 0) {
      this.#socket.send(frame.payload, SEND_TEXT)
      return
    }
    if (tcp.writableCorked === 0) {
      tcp.cork()
      corked.push(tcp)
      if (!uncorkQueued) {
        uncorkQueued = true
        queueMicrotask(uncorkAll)
      }
    }
    tcp.write(frame.wire)
  }
}
