import { nowUs } from './shared.js'

/** Latency percentiles, in ms, from samples in µs. */
export interface Latency { count: number, p50: number, p99: number, p999: number, max: number }

/** Collects µs samples into a growable Float64Array; no per-sample allocation. */
export class Samples {
  #values = new Float64Array(1 << 16)
  count = 0

  add (value: number): void {
    if (this.count === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2)
      grown.set(this.#values)
      this.#values = grown
    }
    this.#values[this.count++] = value
  }

  /** The samples so far (a view, valid until the next `add`). */
  values (): Float64Array {
    return this.#values.subarray(0, this.count)
  }

  reset (): void {
    this.count = 0
  }

  summary (): Latency {
    const sorted = this.#values.subarray(0, this.count).sort()
    const at = (q: number): number => sorted.length === 0 ? NaN : round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000, 3)
    return { count: this.count, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1) }
  }
}

export function round (value: number, digits = 2): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function pool (count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, worker))
}

/**
 * Calls `publish(i)` `total` times at `rate` per second from `start` (µs, nowUs), from a 1 ms timer
 * (no busy loop: CPU is measured).
 */
export function steady (total: number, rate: number, publish: (index: number) => void, start = nowUs()): Promise<void> {
  let sent = 0
  return new Promise((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.max(0, Math.floor((nowUs() - start) * rate / 1e6) + 1))
      while (sent < due) publish(sent++)
      if (sent >= total) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
}
