// A steady private stream for failover tests, and a way to wait for a message by id.
import { compareMessageIds } from '../plugins/index.js'
import { publish, type Client, type Frame } from './helpers.js'

export interface Publish { n: number, status: number, id?: string, ms: number, startedAt: number }

/**
 * Publishes numbered messages to `user`'s `stream` through `http` at about `perSecond`, one at a
 * time, until `stop()`; `log` records each answer and how long it took.
 */
export function publisher (http: string, stream: string, user: string, perSecond = 500): { log: Publish[], stop: () => Promise<void> } {
  const log: Publish[] = []
  const state = { stopped: false }
  const run = (async () => {
    const start = Date.now()
    for (let n = 0; !state.stopped; n++) {
      const due = start + n * 1000 / perSecond - Date.now()
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
      const startedAt = Date.now()
      const res = await publish(http, { stream, user, data: { n } })
      log.push({ n, status: res.status, id: res.body.id as string | undefined, ms: Date.now() - startedAt, startedAt })
    }
  })()
  return { log, stop: async () => { state.stopped = true; await run } }
}

/** Appends the messages `client` receives to `received` until one with `id` or a later id has come. */
export async function receiveUntil (client: Client, received: Frame[], id: string): Promise<void> {
  while (received.length === 0 || compareMessageIds(received[received.length - 1].id, id) < 0) {
    received.push(await client.next((f) => f.event === 'message', 10_000))
  }
}
