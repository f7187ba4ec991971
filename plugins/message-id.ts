/**
 * Message ids shaped like Redis Stream ids (`<ms>-<seq>`), increasing within this process, so
 * they compare the same way whether they come from here or from a Redis Stream.
 */
export class MessageIdGenerator {
  #lastMs = 0
  #seq = 0

  constructor (private readonly now: () => number = Date.now) {}

  next (): { id: string, ts: number } {
    const now = this.now()
    if (now > this.#lastMs) {
      this.#lastMs = now
      this.#seq = 0
    } else {
      this.#seq++
    }
    return { id: `${this.#lastMs}-${this.#seq}`, ts: now }
  }
}
