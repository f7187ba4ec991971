import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { BusMessage } from '../bus/index.js'

/**
 * What a socket over its buffer limit missed under `slowConsumer: 'drop'`, per topic: the id of
 * the last message it was written (the predecessor of the first one dropped), or null when that is
 * unknown (a stream without history). Once a topic has missed a message, its later ones are
 * dropped too, so that nothing overtakes what is to be replayed. `onDrained` is called once the
 * socket has written out its backlog.
 */
export class Missed {
  readonly topics = new Map<string, string | null>()
  readonly #tcp: Socket | null
  readonly #drained: () => void

  constructor (socket: WebSocket, onDrained: () => void) {
    // ws keeps its TCP socket here (wire.ts leans on the same internal).
    this.#tcp = (socket as unknown as { _socket: Socket | null })._socket
    this.#drained = onDrained
    this.#tcp?.once('drain', onDrained)
  }

  add (message: BusMessage): void {
    if (!this.topics.has(message.topic)) this.topics.set(message.topic, message.prev ?? null)
  }

  stop (): void {
    this.#tcp?.removeListener('drain', this.#drained)
  }
}
