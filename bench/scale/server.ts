import type { FastifyInstance } from 'fastify'
import type { Handlers } from '../lib/ipc.js'
import type { Socket } from 'node:net'
import { messageFrame, messageTemplate } from '../../plugins/message.js'
import { notification, nowUs, userName } from '../lib/shared.js'
import { steady } from '../lib/stats.js'
import { floorFrame } from './delivery-frame.js'
import { ROOMS, roomName, SCALE_PRIVATE } from './streams.js'

// What an edge instance of the scale scenario does for the driver, besides the `control` commands:
// publish inside the instance (no IPC per message), so that latency and CPU are the edge's.

// The most users one publish may address (notify's default `maxUsers`).
const USERS_PER_PUBLISH = 1000
const OPEN = 1

/** The payload bytes of a room's message frame as the edge writes it (the floor's frames are as long). */
function roomFrameBytes (): number {
  return Buffer.byteLength(messageFrame(messageTemplate(roomName(0), notification(0)), `${Date.now()}-0`, Date.now()))
}

export function scaleHandlers (app: FastifyInstance): Handlers {
  // Publishes that rejected: the publisher was told, so they do not count as lost (their seqs, to tell).
  const failures = { count: 0, first: null as string | null, seqs: [] as number[] }
  const settle = (published: Promise<unknown>, seq = -1): void => {
    published.catch((err: Error) => {
      failures.count++
      failures.first ??= `${(err as { code?: string }).code ?? ''} ${err.message}`.trim()
      if (seq >= 0) failures.seqs.push(seq)
    })
  }
  return {
    /** `count` messages (default one) to each public stream, in one synchronous loop: every socket receives `count`. */
    'scale-broadcast': ({ seq, count = 1 }: { seq: number, count?: number }) => {
      for (let i = 0; i < count; i++) {
        for (let room = 0; room < ROOMS; room++) settle(app.notify.publish({ stream: roomName(room), data: notification(seq + i) }))
      }
    },
    /**
     * The broadcast floor: one WebSocket frame, framed once, written straight to every open socket's
     * TCP stream in one synchronous loop; no edge code on the way. Returns the sockets written to.
     */
    'scale-floor': () => {
      const frame = floorFrame(nowUs(), roomFrameBytes())
      let written = 0
      for (const { socket } of app.notifyStreams.get('/ws')!.connections) {
        const tcp = (socket as unknown as { _socket: Socket | null })._socket
        if (socket.readyState !== OPEN || tcp === null) continue
        tcp.write(frame)
        written++
      }
      return written
    },
    /** The /ws route's counters (heartbeat sweeps among them). */
    'scale-route-stats': () => ({ ...app.notifyStreams.get('/ws')!.stats }),
    /** One message to each of users 0 … users-1, a thousand users per publish: gives every client a `since`. */
    'scale-prime': async ({ users, seq }: { users: number, seq: number }) => {
      for (let first = 0; first < users; first += USERS_PER_PUBLISH) {
        const batch = Array.from({ length: Math.min(USERS_PER_PUBLISH, users - first) }, (_, i) => userName(first + i))
        await app.notify.publish({ stream: SCALE_PRIVATE, users: batch, data: notification(seq) })
      }
    },
    /** `count` private messages at `rate`/s, each to a random user; seq firstSeq … firstSeq+count-1. */
    'scale-private': async ({ count, rate, users, firstSeq }: { count: number, rate: number, users: number, firstSeq: number }) => {
      await steady(count, rate, (i) => settle(app.notify.publish({ stream: SCALE_PRIVATE, user: userName(Math.floor(Math.random() * users)), data: notification(firstSeq + i) }), firstSeq + i))
    },
    /** The failures so far, and forgets them. */
    'scale-failures': () => {
      const { count, first, seqs } = failures
      failures.count = 0
      failures.first = null
      failures.seqs = []
      return { count, first, seqs }
    }
  }
}
