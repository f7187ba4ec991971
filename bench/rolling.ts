// The rolling-deploy scenario (issue 24, docs/reliability.md): SDK clients on several instances
// that are stopped (drained with 1001) and replaced one by one while a publisher sends keyed
// messages; counts what every client got against what was published. Used at a small size by
// test/rolling.test.ts (in-process instances) and at full size by bench/rolling-run.ts (processes).
import WebSocket from 'ws'
import { connect, type NotifyClient } from '../client/index.js'

/** One running edge; `stop()` drains it (SIGTERM, or app.close()). */
export interface RollingInstance {
  ws: string
  http: string
  stop (): Promise<void>
}

export interface RollingOptions {
  clients: number
  /** Publishes a second: one in `publicEvery` to the public `promotional` stream, the others to one user's `order`. */
  rate: number
  /**
   * Every how many publishes one goes to the public stream (every client gets it). @default 2.
   * A public message is a delivery per client: at 3,000 clients and 200 msg/s, one in 2 is
   * 300,000 deliveries a second, more than 2 cores and the clients on them can read.
   */
  publicEvery?: number
  instances: number
  start (): Promise<RollingInstance>
  /** A JWT for `user`, sent as `?token=`. */
  token (user: string): string
  apiKey: string
  /** How long to wait after the last restart for late deliveries, in ms. @default 5000 */
  settleMs?: number
  /** The SDK's drain window (backoff.drain), in ms. @default 1000 */
  drainJitterMs?: number
}

export interface RollingResult {
  clients: number
  published: number
  /** The rate the publisher reached over the restarts. */
  publishedPerSecond: number
  /** Publishes that never got a 202 after every retry (excluded from `expected`). */
  unanswered: number
  publishRetries: number
  expected: number
  delivered: number
  /** Expected messages a client never got, on a stream where it was never told `gap`. */
  silent: number
  /** A message shown twice to one client (under two ids). */
  duplicates: number
  gaps: number
  reconnects: number
  reconnectP50Ms: number
  reconnectP99Ms: number
}

interface Tracked {
  user: string
  client: NotifyClient
  seen: Map<string, string>
  duplicates: number
  gaps: Set<string>
  connected: boolean
  downAt: number | null
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

async function until (check: () => boolean, timeout: number): Promise<boolean> {
  const deadline = Date.now() + timeout
  while (!check()) {
    if (Date.now() > deadline) return false
    await wait(20)
  }
  return true
}

export async function runRolling (opts: RollingOptions): Promise<RollingResult> {
  const live: RollingInstance[] = []
  const publicEvery = opts.publicEvery ?? 2
  if (!Number.isInteger(publicEvery) || publicEvery < 1) throw new Error('publicEvery must be a positive integer')
  for (let i = 0; i < opts.instances; i++) live.push(await opts.start())
  let turn = 0
  const pick = (): RollingInstance => live[turn++ % live.length]
  const reconnectTimes: number[] = []

  const tracked: Tracked[] = Array.from({ length: opts.clients }, (_, i) => {
    const user = `u${i}`
    const client = connect({
      url: () => `${pick().ws}/ws`,
      getToken: () => opts.token(user),
      WebSocket,
      backoff: { min: 50, max: 2000, drain: opts.drainJitterMs ?? 1000 }
    })
    const entry: Tracked = { user, client, seen: new Map(), duplicates: 0, gaps: new Set(), connected: false, downAt: null }
    const onMessage = (message: { id: string, data: unknown }): void => {
      const key = (message.data as { orderId: string }).orderId
      const before = entry.seen.get(key)
      if (before !== undefined && before !== message.id) entry.duplicates++
      entry.seen.set(key, message.id)
    }
    client.subscribe('order', onMessage)
    client.subscribe('promotional', onMessage)
    client.on('gap', ({ stream }) => entry.gaps.add(stream))
    client.on('connected', () => {
      entry.connected = true
      if (entry.downAt !== null) reconnectTimes.push(Date.now() - entry.downAt)
      entry.downAt = null
    })
    client.on('disconnected', () => {
      entry.connected = false
      entry.downAt ??= Date.now()
    })
    client.on('error', () => {})
    return entry
  })

  try {
    await until(() => tracked.every((c) => c.connected), 60_000)
    const answered = new Map<string, { stream: 'order' | 'promotional', user: string | null }>()
    let published = 0
    let unanswered = 0
    let retries = 0
    // An object, so that the publisher's loop sees the flag change.
    const run = { publishing: true }
    const inFlight = new Set<Promise<void>>()

    const publishOne = async (k: number): Promise<void> => {
      const isPublic = k % publicEvery === 0
      const user = isPublic ? null : `u${k % opts.clients}`
      const orderId = `k${k}`
      const body = isPublic ? { stream: 'promotional', data: { orderId } } : { stream: 'order', user, data: { orderId, status: 'placed' } }
      for (let attempt = 0; attempt < 100; attempt++) {
        if (attempt > 0) { retries++; await wait(100) }
        try {
          const res = await fetch(`${pick().http}/notifications`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-api-key': opts.apiKey, 'idempotency-key': orderId },
            body: JSON.stringify(body)
          })
          await res.arrayBuffer()
          if (res.status === 202) {
            answered.set(orderId, { stream: isPublic ? 'promotional' : 'order', user })
            return
          }
        } catch {
          // A refused connection to a stopping instance: retried on another one.
        }
      }
      unanswered++
    }

    // Open loop from a 1 ms timer: a busy event loop catches up rather than lowering the rate.
    const began = Date.now()
    let publishingMs = 0
    const publisher = (async () => {
      for (let k = 0; run.publishing;) {
        const due = Math.floor((Date.now() - began) * opts.rate / 1000) + 1
        for (; k < due; k++) {
          const sending = publishOne(k).finally(() => inFlight.delete(sending))
          inFlight.add(sending)
          published++
        }
        await wait(1)
      }
      publishingMs = Date.now() - began
    })()

    await wait(1000)
    for (let i = 0; i < opts.instances; i++) {
      const old = live.shift()!
      await old.stop()
      live.push(await opts.start())
      await until(() => tracked.every((c) => c.connected), 60_000)
      await wait(500)
    }
    run.publishing = false
    await publisher
    await Promise.all(inFlight)

    const expectedOf = (c: Tracked): string[] => [...answered].flatMap(([orderId, { stream, user }]) =>
      stream === 'promotional' || user === c.user ? [orderId] : [])
    await until(() => tracked.every((c) => expectedOf(c).every((k) => c.seen.has(k))), opts.settleMs ?? 5000)

    let expected = 0
    let delivered = 0
    let silent = 0
    for (const c of tracked) {
      for (const orderId of expectedOf(c)) {
        expected++
        if (c.seen.has(orderId)) delivered++
        else if (!c.gaps.has(answered.get(orderId)!.stream)) silent++
      }
    }
    reconnectTimes.sort((a, b) => a - b)
    return {
      clients: opts.clients,
      published,
      publishedPerSecond: Math.round(published / (publishingMs / 1000)),
      unanswered,
      publishRetries: retries,
      expected,
      delivered,
      silent,
      duplicates: tracked.reduce((n, c) => n + c.duplicates, 0),
      gaps: tracked.reduce((n, c) => n + c.gaps.size, 0),
      reconnects: reconnectTimes.length,
      reconnectP50Ms: percentile(reconnectTimes, 0.5),
      reconnectP99Ms: percentile(reconnectTimes, 0.99)
    }
  } finally {
    await Promise.all(tracked.map((c) => c.client.close()))
    await Promise.all(live.map((instance) => instance.stop()))
  }
}
