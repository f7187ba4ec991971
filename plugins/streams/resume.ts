import type { Tracer } from '@opentelemetry/api'
import type { BusMessage } from '../bus/index.js'
import type { DeclaredStream } from '../declarations.js'
import type { NotifyHistory } from '../history/index.js'
import { latestAll, readAll } from '../history/store.js'
import { EMPTY_POSITION, compareMessageIds } from '../message-id.js'
import { SpanKind, inSpan } from '../tracing.js'

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

/** A stream with history that a subscribe (or a slow consumer's catch-up) resumes. */
export interface PlannedReplay {
  stream: DeclaredStream
  resume: Resume
}

/**
 * Reads the replay of every one of `planned` in one request to the store (one round trip on
 * Redis, however many streams a subscribe resumes), setting each `resume.replay`. Rejects when
 * history did not answer: every one of them is then a gap (`replay` stays null).
 */
export async function readReplays (history: NotifyHistory, planned: readonly PlannedReplay[], tracer: Tracer | null): Promise<void> {
  if (planned.length === 0) return
  // The empty position resumes from the topic's start, complete while nothing was trimmed.
  const reads = planned.map(({ stream, resume }) => ({
    topic: resume.topic, since: resume.since === EMPTY_POSITION ? '' : resume.since, bounds: stream.history!, limit: history.maxReplay
  }))
  const read = (): Promise<Array<BusMessage[] | null>> => readAll(history.store, reads)
  // Declared names only (a channel's keys left out): low-cardinality, and no user in a topic.
  const names = [...new Set(planned.map(({ stream }) => stream.name))].join(',')
  const replays = await (tracer === null
    ? read()
    : inSpan(tracer, 'notify resume replay', SpanKind.INTERNAL, { 'notify.stream': names, 'notify.reads': reads.length }, read))
  for (let i = 0; i < planned.length; i++) planned[i].resume.replay = replays[i]
}

/**
 * Where each of `topics` stands (SPEC section 6), read in one request: its latest id, or
 * `EMPTY_POSITION` when it has none. Rejects when history did not answer.
 */
export async function readPositions (history: NotifyHistory, topics: readonly string[]): Promise<string[]> {
  return (await latestAll(history.store, topics)).map((latest) => latest === '' ? EMPTY_POSITION : latest)
}
