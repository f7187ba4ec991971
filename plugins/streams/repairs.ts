import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { BusMessage } from '../bus/index.js'
import type { NotifyHistory } from '../history/index.js'
import type { RouteStats } from '../recorder.js'
import type { TopicLine } from './topic-line.js'
import { SpanKind, inSpan } from '../tracing.js'
import type { Tracer } from '@opentelemetry/api'

/** History reads in flight at once, across all topics of a route, after a blip. */
export const REPAIR_CONCURRENCY = 16
/**
 * Pauses before trying a failed history read again, in ms: after a blip the history client may
 * reconnect later than the bus's subscriber, and a read it fails meanwhile would be a needless gap.
 */
export const REPAIR_RETRY_MS = [100, 400, 1500]

/**
 * Reads holes from history, one read per topic however many sockets it has, at most
 * `REPAIR_CONCURRENCY` at a time: a blip that touched thousands of topics neither floods Redis
 * nor waits for them one by one (the reads in flight share the client's connection, pipelined).
 */
export class Repairs {
  #active = 0
  readonly #waiting: Array<() => Promise<void>> = []
  readonly #closing = new AbortController()
  /** Set: each repair is a span (`notify repair`). */
  tracer: Tracer | null = null

  constructor (
    private readonly history: NotifyHistory | null,
    private readonly log: FastifyBaseLogger,
    private readonly stats: RouteStats,
    private readonly retryDelays: readonly number[] = REPAIR_RETRY_MS
  ) {}

  /** Ends the pauses between attempts; what was under way delivers nothing more. */
  close (): void {
    this.#closing.abort()
  }

  run (line: TopicLine, since: string, stream = ''): void {
    const tracer = this.tracer
    this.#waiting.push(tracer === null
      ? () => this.#repair(line, since)
      : () => inSpan(tracer, 'notify repair', SpanKind.INTERNAL, { 'notify.stream': stream }, () => this.#repair(line, since)))
    this.#next()
  }

  #next (): void {
    while (this.#active < REPAIR_CONCURRENCY && this.#waiting.length > 0) {
      this.#active++
      this.#waiting.shift()!().finally(() => {
        this.#active--
        this.#next()
      })
    }
  }

  async #repair (line: TopicLine, since: string): Promise<void> {
    const replay = await this.#read(line, since)
    if (this.#closing.signal.aborted) return
    try {
      this.stats.repaired += line.repaired(replay)
    } catch (err) {
      this.log.error({ err, topic: line.topic }, 'notify repair delivery failed')
    }
  }

  async #read (line: TopicLine, since: string): Promise<BusMessage[] | null> {
    if (this.history === null || line.history === undefined) return null
    for (let attempt = 0; !line.closed; attempt++) {
      try {
        return await this.history.store.read(line.topic, since, line.history, line.history.size)
      } catch (err) {
        if (attempt >= this.retryDelays.length) {
          this.log.warn({ err, topic: line.topic }, 'notify history read failed while repairing live delivery: reporting a gap')
          return null
        }
        this.log.debug({ err, topic: line.topic, attempt }, 'notify history read failed while repairing live delivery: trying again')
      }
      try {
        await sleep(this.retryDelays[attempt], undefined, { signal: this.#closing.signal, ref: false })
      } catch {
        return null
      }
    }
    return null
  }
}
