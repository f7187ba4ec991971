import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { tuneV8ForEdge } from './v8-flags.js'

/**
 * Listens, and on SIGTERM/SIGINT (or a crash) closes the app: sockets get 1001 and drain, then
 * Redis connections close; 10 s at most. Every process of ours serves through here (the dedicated
 * edge, the example app, the split example's three), so V8 is tuned here, before any traffic.
 */
export async function serve (app: FastifyInstance, address: { port: number, host: string }): Promise<void> {
  tuneV8ForEdge()
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'draining')
    await app.close()
    app.log.info('closed')
  })
  await app.listen(address)
}
