import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { within } from '../util.js'
import { CLOSE, type Connection } from './connection.js'

const STEP_MS = 50

/**
 * Closes sockets with 1001, spread over `spread.window` ms at most `spread.rate` a second (a
 * few close at once, thousands over the window), waits for them up to `timeout` ms after the
 * last close, then terminates the rest.
 */
async function drain (connections: ReadonlySet<Connection>, timeout: number, spread: { window: number, rate: number }): Promise<void> {
  if (connections.size === 0) return
  const sockets = [...connections]
  const window = Math.min(spread.window, Math.ceil(sockets.length * 1000 / spread.rate))
  const steps = Math.max(1, Math.floor(window / STEP_MS))
  const perStep = Math.ceil(sockets.length / steps)
  const closed: Array<Promise<void>> = []
  for (let i = 0; i < sockets.length; i += perStep) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, STEP_MS))
    for (const connection of sockets.slice(i, i + perStep)) {
      connection.close(CLOSE.GOING_AWAY, 'server shutting down')
      closed.push(connection.closed)
    }
  }
  await within(timeout, Promise.all(closed))
  for (const connection of connections) connection.socket.terminate()
  await Promise.all(closed)
}

/**
 * The shutdown sequence of every streams route of an app, installed once: on `app.close()` all
 * routes drain at once (not one after another), and handshakes that arrive meanwhile are
 * answered 503 and their sockets closed.
 */
export function installDrain (app: FastifyInstance): void {
  let closing = false
  // Fastify answers routes with 503 once closing, upgrades included, but leaves an upgrade's
  // socket open, which would hold server.close() forever. This listener runs after the one of
  // @fastify/websocket, so the 503 is already written when the socket is ended.
  const onUpgrade = (_request: unknown, socket: Duplex): void => {
    if (closing) socket.end(() => socket.destroy())
  }
  app.server.on('upgrade', onUpgrade)

  app.addHook('preClose', async () => {
    closing = true
    await Promise.all([...app.notifyStreams.values()].map((route) => drain(route.connections, route.drainTimeout, route.drainSpread)))
  })
  app.addHook('onClose', async () => { app.server.off('upgrade', onUpgrade) })
}
