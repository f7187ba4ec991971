// Failover tests' tools: example-app instances, a steady private stream, and the checks after.
import type { Test } from 'tap'
import { compareMessageIds } from '../plugins/index.js'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { API_KEY, SECRET, publish, urls, type Client, type Frame } from './helpers.js'

export interface Publish { n: number, status: number, id?: string, online?: boolean, ms: number, startedAt: number }

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
      log.push({ n, status: res.status, id: res.body.id as string | undefined, online: res.body.online as boolean | undefined, ms: Date.now() - startedAt, startedAt })
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

/**
 * Once the bus has re-subscribed (at `resubscribedAt`), waits for 300 more accepted publishes,
 * stops the load and checks what a failover must leave intact on the socket that stayed open:
 * every publish answered 202 or 503 in under 1.5 s, and everything accepted since arrived live,
 * in order, once. Returns the publishes accepted after the re-subscription.
 */
export async function checkRecovered (t: Test, load: ReturnType<typeof publisher>, live: Client, received: Frame[], resubscribedAt: number): Promise<Publish[]> {
  const accepted = (): Publish[] => load.log.filter((p) => p.startedAt >= resubscribedAt && p.status === 202)
  while (accepted().length < 300) await new Promise((resolve) => setTimeout(resolve, 20))
  await load.stop()
  const after = accepted()
  await receiveUntil(live, received, after[after.length - 1].id!)
  t.equal(live.closeCode, null, 'the socket stayed open')
  const since = received.filter((m) => compareMessageIds(m.id, after[0].id!) >= 0)
  t.same(since.map((m) => m.id), after.map((p) => p.id), 'every message accepted after the failover arrived live, in order, once')
  t.ok(received.every((m, i) => i === 0 || compareMessageIds(received[i - 1].id, m.id) < 0), 'ids only increase on the live socket')
  const statuses = new Set(load.log.map((p) => p.status))
  t.ok([...statuses].every((status) => status === 202 || status === 503), `every publish answered 202 or 503 (${[...statuses]})`)
  const slowest = Math.max(...load.log.map((p) => p.ms))
  t.ok(slowest < 1500, `no publish took 1.5 s or more (slowest ${slowest} ms)`)
  t.comment(`${load.log.length} publishes, ${load.log.filter((p) => p.status === 503).length} answered 503 during the failover, slowest ${slowest} ms`)
  return after
}

/**
 * Resumes on two fresh sockets: from `beforeKill` (a gap: the failover may have lost messages
 * after it) and from the 51st-last message accepted after the failover (the last 50, in order).
 */
export async function checkResume (t: Test, open: () => Promise<Client>, stream: string, beforeKill: string, after: Publish[]): Promise<void> {
  t.same((await (await open()).subscribe({ stream, since: beforeKill })).gaps, [stream], 'a resume from before the failover is told of a gap')
  const resumed = await open()
  t.same((await resumed.subscribe({ stream, since: after[after.length - 51].id! })).gaps, [], 'a resume from after the failover has none')
  const replay: Frame[] = []
  await receiveUntil(resumed, replay, after[after.length - 1].id!)
  t.same(replay.map((m) => m.id), after.slice(-50).map((p) => p.id), 'and gets every message after since, in order')
}

/** The example app with `env` (and the test secrets), listening on a free port; closed when the test ends. */
export async function exampleApp (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>): Promise<{ app: FastifyInstance, http: string, ws: string }> {
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ...env })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}
