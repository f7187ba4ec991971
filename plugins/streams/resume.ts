import type { BusMessage } from '../bus/index.js'
import { compareMessageIds } from '../message-id.js'

const SEND_TEXT = { binary: false }

/** What a resume writes to: the socket of its connection. */
interface FrameSink {
  send (data: string | Buffer, options: { binary: boolean }): void
}

/**
 * One stream being resumed on one connection. The topic is live on the bus before history is
 * read, and its live messages are held here meanwhile, so nothing published during the read is
 * lost; those the replay already holds are then dropped by id.
 */
export class Resume {
  readonly #held: Array<{ frame: Buffer, id: string }> = []
  /** The messages after `since`, or null for a gap (nothing replayed, everything held sent). */
  replay: BusMessage[] | null = null

  constructor (readonly topic: string, readonly since: string) {}

  hold (frame: Buffer, message: BusMessage): void {
    this.#held.push({ frame, id: message.id })
  }

  /** Writes the replay in order, then the held live messages that came after it. */
  finish (socket: FrameSink): void {
    let last: string | null = null
    if (this.replay !== null) {
      for (const message of this.replay) socket.send(message.frame, SEND_TEXT)
      last = this.replay.length > 0 ? this.replay[this.replay.length - 1].id : this.since
    }
    for (const { frame, id } of this.#held) {
      if (last === null || compareMessageIds(id, last) > 0) socket.send(frame, SEND_TEXT)
    }
    this.#held.length = 0
  }
}
