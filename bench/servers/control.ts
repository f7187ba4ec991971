import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { join } from 'node:path'
import { constants, PerformanceObserver, performance } from 'node:perf_hooks'
import { argument, serve, type Handlers } from '../lib/ipc.js'
import { notification, userName, type Notification } from '../lib/shared.js'
import { steady } from '../lib/stats.js'

/** What each contender's server process implements for the driver. */
export interface Contender {
  port: number
  /** Sends one notification to every subscriber of the public stream. */
  publishPublic (data: Notification): unknown
  /** Sends one notification to `user`'s private stream, wherever the user is connected. */
  publishPrivate (user: string, data: Notification): unknown
  connections (): number
  close (): Promise<void>
}

declare const gc: () => void

// With --profile <dir>, each measured window (cpu-start to cpu) is written there as a .cpuprofile.
const profileDir = argument('profile')
const profiler = profileDir === undefined ? null : new Session()
let profiles = 0

async function startProfile (): Promise<void> {
  if (profiler === null) return
  if (profiles === 0) {
    profiler.connect()
    await profiler.post('Profiler.enable')
    // The default 1 ms sampling beats in step with the 1 ms publish timer and sees mostly idle:
    // sample at an interval prime to it.
    await profiler.post('Profiler.setSamplingInterval', { interval: 97 })
  }
  await profiler.post('Profiler.start')
}

async function stopProfile (): Promise<void> {
  if (profiler === null) return
  const { profile } = await profiler.post('Profiler.stop')
  writeFileSync(join(profileDir!, `${process.pid}-${++profiles}.cpuprofile`), JSON.stringify(profile))
}

// Major (mark-compact) collections since `cpu-start`: a server whose short-lived allocations V8
// moved to the old generation pays for them here, where a healthy one has none in a short window
// (docs/benchmarks.md, "A burst can make V8 pretenure the publish path"). The driver's own full
// GCs before `cpu-start` are left out by their start time.
let windowStart = Infinity
let majorGcs = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR && entry.startTime >= windowStart) majorGcs++
  }
}).observe({ entryTypes: ['gc'] })

/** Serves the driver's commands for `contender` (and `extra` ones); CPU is counted from `cpu-start` to `cpu`. */
export function control (contender: Contender, extra: Handlers = {}): void {
  let cpuStart = process.cpuUsage()
  let failures = 0
  const failed = (): void => { failures++ }
  const settle = (result: unknown): void => {
    if (result instanceof Promise) result.catch(failed)
  }

  serve({
    'cpu-start': async () => {
      await startProfile()
      majorGcs = 0
      windowStart = performance.now()
      cpuStart = process.cpuUsage()
    },
    cpu: async () => {
      const { user, system } = process.cpuUsage(cpuStart)
      await stopProfile()
      // GC entries reach the observer a turn after the collection.
      await new Promise((resolve) => setImmediate(resolve))
      windowStart = Infinity
      // The kernel's share apart: a socket write on loopback runs the peer's TCP receive too.
      return { us: user + system, userUs: user, systemUs: system, failures, majorGcs }
    },
    memory: () => {
      gc()
      gc()
      const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage()
      return { rss, heapUsed, heapTotal, external, arrayBuffers }
    },
    connections: () => contender.connections(),
    // All in one synchronous loop: a burst, as when many messages arrive in one read.
    burst: ({ count, firstSeq }: { count: number, firstSeq: number }) => {
      for (let i = 0; i < count; i++) settle(contender.publishPublic(notification(firstSeq + i)))
    },
    rate: async ({ count, rate, users, firstSeq }: { count: number, rate: number, users: number, firstSeq: number }) => {
      await steady(count, rate, (i) => settle(contender.publishPrivate(userName(i % users), notification(firstSeq + i))))
    },
    close: async () => {
      await contender.close()
      setImmediate(() => process.exit(0))
    },
    ...extra
  }, { port: contender.port })
}
