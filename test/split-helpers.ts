// An order service (the example's `orderRoutes`, unchanged) in a Fastify app of its own, with
// `app.notify` from the publisher: the split-out shape of SPEC section 11.

import { once } from 'node:events'
import { createServer, type Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { notifyPublisher, type NotifyPublisherOptions } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { orderRoutes } from '../example-app/orders.js'
import { scanKeys } from './redis-server.js'
import { urls } from './helpers.js'

type Test = { teardown: (fn: () => unknown) => void }

/** A publisher app on a loopback port, with the order routes when `stepMs` is given; closed when the test ends. */
export async function publisherApp (t: Test, opts: Partial<NotifyPublisherOptions>, stepMs?: number): Promise<{ app: FastifyInstance, http: string }> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyPublisher, { streams: STREAMS, ...opts })
  if (stepMs !== undefined) await app.register(orderRoutes, { stepMs })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, http: urls(app).http }
}

/** Deletes the test's keys from the shared Redis when the test ends (the manifest has no expiry). */
export function cleanUpKeys (t: Test, url: string, prefix: string): void {
  t.teardown(async () => {
    const redis = new Redis(url)
    const keys = await scanKeys(redis, prefix)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
}

export async function placeOrder (http: string, user: string): Promise<string> {
  const res = await fetch(`${http}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }) })
  if (res.status !== 202) throw new Error(`POST /orders: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { orderId: string }).orderId
}

/** A TCP server that accepts connections and never answers: a frozen edge. */
export async function silentServer (t: Test): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => { sockets.add(socket) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return (server.address() as { port: number }).port
}
