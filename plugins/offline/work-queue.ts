// Bounded concurrency for offline deliveries: at most `concurrency` sends at once, the rest wait
// in a bounded queue; retries wait on unref'd timers. `idle()` tells when everything is done.

export type Task = () => Promise<void>

export class WorkQueue {
  readonly #concurrency: number
  readonly #maxQueue: number
  readonly #queue: Task[] = []
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #idle: Array<() => void> = []
  #running = 0
  // Work announced but not yet queued (a handoff still asking preferences).
  #held = 0
  #closed = false

  constructor (concurrency: number, maxQueue: number) {
    this.#concurrency = concurrency
    this.#maxQueue = maxQueue
  }

  /** Sends in flight now. */
  get running (): number {
    return this.#running
  }

  /**
   * Queues `task`; false when closed, or full and not `always` (the task is dropped). Work that
   * follows from queued work (a claimed copy's sends, a retry) is queued `always`: the bound
   * applies to new copies.
   */
  push (task: Task, always = false): boolean {
    if (this.#closed || (!always && this.#queue.length >= this.#maxQueue)) return false
    this.#queue.push(task)
    this.#drain()
    return true
  }

  /** Queues `task` after `ms`; dropped when the queue closes first. */
  later (ms: number, task: Task): void {
    if (this.#closed) return
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      this.push(task, true)
      this.#settled()
    }, ms)
    timer.unref()
    this.#timers.add(timer)
  }

  /** Marks work as under way until the returned function is called. */
  hold (): () => void {
    this.#held++
    let released = false
    return () => {
      if (released) return
      released = true
      this.#held--
      this.#settled()
    }
  }

  /** Resolves once nothing is queued, running, waiting for a retry or held. */
  idle (): Promise<void> {
    if (this.#isIdle()) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Drops what waits (queue and retry timers); resolves once the sends in flight are done. */
  close (): Promise<void> {
    this.#closed = true
    this.#queue.length = 0
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    return this.idle()
  }

  #drain (): void {
    while (this.#running < this.#concurrency && this.#queue.length > 0) {
      const task = this.#queue.shift() as Task
      this.#running++
      // A task reports its own failures; a throw here is a bug, and must not stall the queue.
      task().catch(() => {}).finally(() => {
        this.#running--
        this.#drain()
        this.#settled()
      })
    }
  }

  #isIdle (): boolean {
    return this.#running === 0 && this.#queue.length === 0 && this.#timers.size === 0 && this.#held === 0
  }

  #settled (): void {
    if (!this.#isIdle()) return
    for (const resolve of this.#idle.splice(0)) resolve()
  }
}
