import type { WebSocket } from 'ws'
import type { RouteStats } from '../recorder.js'

const OPEN = 1

/** A socket the heartbeat watches, and what it had read and been sent at the last sweep. */
export interface Watched {
  readonly socket: WebSocket
  /** Bytes its TCP socket had read at the last sweep. */
  readAtPing: number
  /** Whether the last sweep pinged it. */
  pinged: boolean
  /** Set by the connection when the client sends a frame; cleared by each sweep. */
  talked: boolean
  /** Sends the socket a protocol ping. */
  ping (): void
}

interface SocketInternals { _socket: { bytesRead: number } | null }

/**
 * Protocol-level liveness for one route: a single interval sweeps every open socket. A socket
 * that has read nothing since the previous sweep (no pong, no frame) after being pinged by it is
 * handed to `onDead`. Anything read proves the peer alive, so no 'pong' listener is needed: on an
 * idle connection a fourth listener would grow ws's listener table by about 100 bytes.
 *
 * A socket whose client sent frames since the last sweep is not pinged: every client frame is
 * answered, so its traffic already runs both ways (keeping proxies' idle timers and NAT mappings
 * alive), and the SDK's own application ping (every 25 s, which browsers need since they cannot
 * see protocol pings) would otherwise be doubled by ours. If it then falls silent, the next sweep
 * pings it and the one after finds it dead. So a dead peer is found within two intervals when it
 * was idle, three when it had just been talking. Each sweep's CPU time is counted in `stats`, so
 * that an idle instance's cost can be split into the sweeps and the rest (bench/scale).
 */
export class Heartbeat {
  #timer: NodeJS.Timeout | null = null

  constructor (
    private readonly interval: number,
    private readonly watched: Iterable<Watched>,
    private readonly onDead: (socket: WebSocket) => void,
    private readonly stats: Pick<RouteStats, 'heartbeatSweeps' | 'heartbeatPings' | 'heartbeatSweepCpuUs'>
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
    let pings = 0
    for (const watched of this.watched) {
      const { socket } = watched
      if (socket.readyState !== OPEN) continue
      // ws's TCP socket (a ws internal, as in wire.ts): what the kernel handed up, pongs included.
      const read = (socket as unknown as SocketInternals)._socket?.bytesRead ?? -1
      const silent = read === watched.readAtPing
      if (silent && watched.pinged) {
        this.onDead(socket)
        continue
      }
      watched.readAtPing = read
      watched.pinged = silent || !watched.talked
      watched.talked = false
      if (watched.pinged) {
        watched.ping()
        pings++
      }
    }
    const { user, system } = process.cpuUsage(began)
    this.stats.heartbeatSweeps++
    this.stats.heartbeatPings += pings
    this.stats.heartbeatSweepCpuUs += user + system
  }
}
