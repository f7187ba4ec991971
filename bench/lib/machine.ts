import os from 'node:os'

// The machine a stand-alone scenario ran on, its load before and after, and the date: every
// figure in docs/benchmarks.md carries these. A load average above 1.5 on 2 cores means other
// work shared the CPU: the output says so, so that a busy run is never read as a measurement.

const BUSY_LOAD = 1.5

export interface Machine {
  date: string
  cpu: string
  cores: number
  memoryGB: number
  node: string
  loadAverageBefore: number[]
  loadAverageAfter: number[]
  busy: boolean
  note?: string
}

function load (): number[] {
  return os.loadavg().map((v) => Math.round(v * 100) / 100)
}

/** Call at the start of a run; `finish()` at its end adds the load after and the busy verdict. */
export function machine (): { finish: () => Machine } {
  const before = load()
  const date = new Date().toISOString()
  return {
    finish () {
      const after = load()
      const busy = Math.max(before[0], after[0]) > BUSY_LOAD
      return {
        date,
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        memoryGB: Math.round(os.totalmem() / 2 ** 29) / 2,
        node: process.version,
        loadAverageBefore: before,
        loadAverageAfter: after,
        busy,
        ...(busy ? { note: `Load average above ${BUSY_LOAD}: the machine was busy, these figures are not a clean run.` } : {})
      }
    }
  }
}
