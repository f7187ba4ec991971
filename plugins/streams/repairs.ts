import type { FastifyBaseLogger } from 'fastify'
import type { BusMessage } from '../bus/index.js'
import type { NotifyHistory } from '../history/index.js'
import type { RouteStats } from '../recorder.js'
import type { TopicLine } from './topic-line.js'

/** History reads in flight at once, across all topics of a route, after a blip. */
export const REPAIR_CONCURRENCY = 16

/**
 * Reads holes from history, one read per topic however many sockets it has, at most
 * `REPAIR_CONCURRENCY` at a time: a blip that touched thousands of topics neither floods Redis
 * nor waits for them one by one (the reads in flight share the client's connection, pipelined).
 */
export class Repairs {
  #active = 0
  readonly #waiting: Array<() => Promise<void>> = []

  constructor (private readonly history: NotifyHistory | null, private readonly log: FastifyBaseLogger, private readonly stats: RouteStats) {}

  run (line: TopicLine, since: string): void {
    this.#waiting.push(() => this.#repair(line, since))
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
    let replay: BusMessage[] | null = null
    if (this.history !== null && line.history !== undefined && !line.closed) {
      try {
        replay = await this.history.store.read(line.topic, since, line.history, line.history.size)
      } catch (err) {
        this.log.warn({ err, topic: line.topic }, 'notify history read failed while repairing live delivery: reporting a gap')
      }
    }
    try {
      this.stats.repaired += line.repaired(replay)
    } catch (err) {
      this.log.error({ err, topic: line.topic }, 'notify repair delivery failed')
    }
  }
}
