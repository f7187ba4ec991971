import type { Handlers } from './ipc.js'
import { nowUs } from './shared.js'

// What the bare consumers (the floors of the ingress and pipelines scenarios) count, and the
// commands the bench calls on them: `arm` before a flood, `wait` for its end.

export class Consumed {
  count = 0
  #firstT = Infinity
  #lastAt = 0
  #cpuStart = process.cpuUsage()
  #waiting: { expected: number, resolve: () => void } | null = null

  /** One message consumed, published at `t` (nowUs). */
  seen (t: number): void {
    if (t < this.#firstT) this.#firstT = t
    this.#lastAt = nowUs()
    if (++this.count >= (this.#waiting?.expected ?? Infinity)) this.#waiting?.resolve()
  }

  /** The `arm` and `wait` commands, and `close` that runs `stop` then exits. */
  commands (stop: () => Promise<void>): Handlers {
    return {
      arm: () => {
        this.count = 0
        this.#firstT = Infinity
        this.#cpuStart = process.cpuUsage()
      },
      wait: async ({ expected }: { expected: number }) => {
        if (this.count < expected) await new Promise<void>((resolve) => { this.#waiting = { expected, resolve } })
        this.#waiting = null
        const { user, system } = process.cpuUsage(this.#cpuStart)
        return { consumed: this.count, spanMs: (this.#lastAt - this.#firstT) / 1000, cpuUs: user + system }
      },
      close: async () => {
        await stop()
        setImmediate(() => process.exit(0))
      }
    }
  }
}
