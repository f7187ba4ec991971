import type { WebSocket } from 'ws'

const OPEN = 1

/**
 * Protocol-level liveness for one route: a single interval pings every open socket; a socket
 * that has not answered the previous ping by the next tick is handed to `onDead`. So a dead
 * peer is found within one to two intervals, at the cost of one timer per route.
 */
export class Heartbeat {
  readonly #awaiting = new WeakSet<WebSocket>()
  readonly #onPong: (this: WebSocket) => void
  #timer: NodeJS.Timeout | null = null

  constructor (
    private readonly interval: number,
    private readonly sockets: () => Iterable<WebSocket>,
    private readonly onDead: (socket: WebSocket) => void
  ) {
    const awaiting = this.#awaiting
    this.#onPong = function onPong () { awaiting.delete(this) }
  }

  watch (socket: WebSocket): void {
    socket.on('pong', this.#onPong)
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.#beat(), this.interval)
      this.#timer.unref()
    }
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  #beat (): void {
    for (const socket of this.sockets()) {
      if (socket.readyState !== OPEN) continue
      if (this.#awaiting.has(socket)) {
        this.onDead(socket)
        continue
      }
      this.#awaiting.add(socket)
      socket.ping()
    }
  }
}
