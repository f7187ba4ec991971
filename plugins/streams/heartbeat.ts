import type { WebSocket } from 'ws'
import type { RouteStats } from '../recorder.js'

const OPEN = 1

/** A socket the heartbeat watches, and how many bytes its TCP socket had read at the last ping. */
export interface Watched {
  readonly socket: WebSocket
  readAtPing: number
  /** Sends the socket a protocol ping. */
  ping (): void
}

interface SocketInternals { _socket: { bytesRead: number } | null }

/**
 * Protocol-level liveness for one route: a single interval pings every open socket; a socket that
 * has read nothing since the previous ping (no pong, no frame) by the next tick is handed to
 * `onDead`. So a dead peer is found within one to two intervals, at the cost of one timer per route.
 * Anything read proves the peer alive, so no 'pong' listener is needed: on an idle connection a
 * fourth listener would grow ws's listener table by about 100 bytes.
 *
 * A socket that sent frames since the last ping still gets one: its next interval may be silent,
 * and skipping a ping would then take a third interval to find it dead (idle sockets, the many,
 * read nothing but pongs anyway). Each sweep's CPU time is counted in `stats`, so that an idle
 * instance's cost can be split into the sweeps and the rest (bench/scale).
 */
export class Heartbeat {
  #timer: NodeJS.Timeout | null = null

  constructor (
    private readonly interval: number,
    private readonly watched: Iterable<Watched>,
    private readonly onDead: (socket: WebSocket) => void,
    private readonly stats: Pick<RouteStats, 'heartbeatSweeps' | 'heartbeatSweepCpuUs'>
  ) {}

  /** Starts the route's timer, once its first socket is open. */
  start (): void {
    if (this.#timer !== null) return
    this.#timer = setInterval(() => this.#beat(), this.interval)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  #beat (): void {
    const began = process.cpuUsage()
    for (const watched of this.watched) {
      const { socket } = watched
      if (socket.readyState !== OPEN) continue
      // ws's TCP socket (a ws internal, as in wire.ts): what the kernel handed up, pongs included.
      const read = (socket as unknown as SocketInternals)._socket?.bytesRead ?? -1
      if (read === watched.readAtPing) {
        this.onDead(socket)
        continue
      }
      watched.readAtPing = read
      watched.ping()
    }
    const { user, system } = process.cpuUsage(began)
    this.stats.heartbeatSweeps++
    this.stats.heartbeatSweepCpuUs += user + system
  }
}
