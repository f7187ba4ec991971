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
 * lost; those the replay already holds are dropped by id. On Redis the read and the bus use
 * different connections, so a replayed message may still arrive live after the replay was
 * written: until a live message newer than the replay comes, older ones keep being dropped.
 */
export class Resume {
  #held: Array<{ frame: Buffer, id: string }> | null = []
  #last: string | null = null
  /** The messages after `since`, or null for a gap (nothing replayed, everything held sent). */
  replay: BusMessage[] | null = null

  constructor (readonly topic: string, readonly since: string) {}

  /** Whether a live message is to be written now; while history is read it is held instead. */
  admit (frame: Buffer, message: BusMessage): boolean {
    if (this.#held === null) return compareMessageIds(message.id, this.#last!) > 0
    this.#held.push({ frame, id: message.id })
    return false
  }

  /**
   * Writes the replay in order, then the held live messages that came after it. True while live
   * messages still need `admit()` to drop what was replayed.
   */
  finish (socket: FrameSink): boolean {
    const held = this.#held!
    this.#held = null
    if (this.replay !== null) {
      for (const message of this.replay) socket.send(message.frame, SEND_TEXT)
      this.#last = this.replay.length > 0 ? this.replay[this.replay.length - 1].id : this.since
    }
    let passed = false
    for (const { frame, id } of held) {
      if (this.#last === null || compareMessageIds(id, this.#last) > 0) {
        socket.send(frame, SEND_TEXT)
        passed = true
      }
    }
    // Once anything newer than the replay went through, every older live copy has arrived.
    return this.#last !== null && !passed
  }
}
