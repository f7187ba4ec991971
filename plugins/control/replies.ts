import type { ControlResult } from '../control-commands.js'

class Gathering {
  instances = 0
  connections = 0
  expected: number | null = -1
  timer: NodeJS.Timeout | null = null
  resolve: ((result: ControlResult) => void) | null = null

  add (touched: number): void {
    this.instances++
    this.connections += touched
    if (this.expected !== null && this.expected >= 0 && this.instances >= this.expected) this.settle()
  }

  settle (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.resolve?.({ instances: this.instances, connections: this.connections })
    this.resolve = null
  }
}

/**
 * The answers to this instance's commands: each instance that acted on one answers with how many
 * connections it touched. PUBLISH tells how many instances received the command, so the wait ends
 * with the last answer, or after the timeout with those that came.
 */
export class Replies {
  readonly #pending = new Map<string, Gathering>()

  /** Starts counting the answers to `ref` (before the command is sent: an answer may come first). */
  open (ref: string): { wait: (receivers: number | null, timeout: number) => Promise<ControlResult> } {
    const gathering = new Gathering()
    this.#pending.set(ref, gathering)
    return {
      wait: (receivers, timeout) => new Promise((resolve) => {
        gathering.resolve = (result) => {
          this.#pending.delete(ref)
          resolve(result)
        }
        gathering.expected = receivers
        if (receivers !== null && gathering.instances >= receivers) return gathering.settle()
        gathering.timer = setTimeout(() => gathering.settle(), timeout)
      })
    }
  }

  add (ref: string, touched: number): void {
    this.#pending.get(ref)?.add(touched)
  }

  cancel (ref: string): void {
    this.#pending.delete(ref)
  }

  /** Settles every wait with what it has (the app is closing). */
  close (): void {
    for (const gathering of this.#pending.values()) gathering.settle()
  }
}
