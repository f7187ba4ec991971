import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { within } from '../util.js'
import { CLOSE, type Connection } from './connection.js'

/** Closes sockets with 1001, waits for them up to `timeout` ms, then terminates the rest. */
async function drain (connections: ReadonlySet<Connection>, timeout: number): Promise<void> {
  if (connections.size === 0) return
  const closed = [...connections].map((connection) => {
    connection.close(CLOSE.GOING_AWAY, 'server shutting down')
    return connection.closed
  })
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
    await Promise.all([...app.notifyStreams.values()].map((route) => drain(route.connections, route.drainTimeout)))
  })
  app.addHook('onClose', async () => { app.server.off('upgrade', onUpgrade) })
}
