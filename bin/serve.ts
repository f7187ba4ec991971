import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'

/**
 * Listens, and on SIGTERM/SIGINT (or a crash) closes the app: sockets get 1001 and drain, then
 * Redis connections close; 10 s at most.
 */
export async function serve (app: FastifyInstance, address: { port: number, host: string }): Promise<void> {
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an error')
    else app.log.info({ signal }, 'draining')
    await app.close()
    app.log.info('closed')
  })
  await app.listen(address)
}
