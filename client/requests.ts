import { NotifyClientError, type ServerErrorCode } from './errors.js'

type Frame = Record<string, unknown>

interface Pending {
  resolve: (frame: Frame) => void
  reject: (err: NotifyClientError) => void
  timer: ReturnType<typeof setTimeout>
}

/**
 * Publishes and calls waiting for their answer, by correlation id. None is ever sent again: a
 * publish or a call that may have had an effect is settled once, with its answer, a timeout, or
 * the connection's loss (then the caller decides whether to try again).
 */
export class Requests {
  readonly #pending = new Map<string, Pending>()

  /** Waits for the answer to the frame sent with `id`. */
  wait (id: string, timeout: number): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new NotifyClientError('NOTIFY_CLIENT_TIMEOUT', `no answer within ${timeout} ms`))
      }, timeout)
      this.#pending.set(id, { resolve, reject, timer })
    })
  }

  /** Settles the request `frame` answers; false when it answers none of ours. */
  settle (frame: Frame): boolean {
    const id = frame.id
    const pending = typeof id === 'string' ? this.#pending.get(id) : undefined
    if (pending === undefined) return false
    this.#pending.delete(id as string)
    clearTimeout(pending.timer)
    if (frame.event !== 'error') {
      pending.resolve(frame)
    } else {
      pending.reject(new NotifyClientError(frame.code as ServerErrorCode, String(frame.message), {
        stream: typeof frame.stream === 'string' ? frame.stream : undefined,
        status: typeof frame.status === 'number' ? frame.status : undefined,
        reason: typeof frame.reason === 'string' ? frame.reason : undefined
      }))
    }
    return true
  }

  /** The socket closed: whatever waits may or may not have happened. */
  failAll (): void {
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(new NotifyClientError('NOTIFY_CLIENT_DISCONNECTED', 'the connection closed before the answer came: it may or may not have happened'))
    }
    this.#pending.clear()
  }
}
