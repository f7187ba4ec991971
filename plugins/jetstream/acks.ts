import type { JsMsg } from '@nats-io/jetstream'

// Acknowledgements handed to the NATS client together, once per event-loop turn. The client
// writes what it holds at the end of the microtask queue, and each message's publish finishes in
// a microtask of its own, so acked one by one every ack is a write of its own: a syscall here, a
// packet the server reads, on the cores the edge shares with it. Acked at the turn's end, the
// messages finished in that turn leave in one write. Still each one only after its publish; the
// next message of a subject does not wait for its predecessor's ack, only for its publish.

export class AckBatch {
  #messages: JsMsg[] = []
  #sent: Promise<void> | null = null
  readonly #failed: (err: unknown, msg: JsMsg) => void

  /** `failed`: an ack the client refused (its connection closed); the server redelivers that message. */
  constructor (failed: (err: unknown, msg: JsMsg) => void) {
    this.#failed = failed
  }

  /** Acks `msg` at the end of this turn. */
  ack (msg: JsMsg): void {
    this.#messages.push(msg)
    this.#sent ??= new Promise((resolve) => setImmediate(() => {
      const messages = this.#messages
      this.#messages = []
      this.#sent = null
      for (const message of messages) {
        try {
          message.ack()
        } catch (err) {
          this.#failed(err, message)
        }
      }
      resolve()
    }))
  }

  /** Resolves once the client holds every ack asked for so far (before the connection closes). */
  async sent (): Promise<void> {
    await this.#sent
  }
}
