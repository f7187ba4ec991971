import http from 'node:http'
import { serve } from './lib/ipc.js'
import { API_KEY, PUBLIC_STREAM, notification, nowUs } from './lib/shared.js'
import { round } from './lib/stats.js'

// The publisher of the sustained scenario, a process of its own: one `POST /notifications` per
// message, over keep-alive connections, as another service would publish. Each publish reaches
// the server as its own request, so each is handled in its own event-loop turn there.
//
// The connections are opened before the feed (`open`), as a producer's pool is. Node 20's libuv
// accepts one connection per event-loop iteration (libuv#3696): a feed that opened connections as
// it went was throttled by the server's accepts while a fan-out kept each iteration long — one
// publish per iteration, at 10,000 subscribers about one per 80 ms — and measured that, not the
// server's publishing.

interface Feed {
  port: number
  /** Messages per second; 0: as fast as the server answers, `inFlight` requests at a time. */
  rate: number
  count: number
  firstSeq: number
  /** Most requests outstanding at once; an open-loop rate the server cannot take is capped here. */
  inFlight: number
}

let pool: { port: number, agent: http.Agent } | null = null

function request (agent: http.Agent, port: number, body: string | null): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: body === null ? 'GET' : 'POST',
      path: body === null ? '/feeder-warm-up' : '/notifications',
      agent,
      headers: body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-api-key': API_KEY }
    }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body ?? undefined)
  })
}

function shut (): void {
  pool?.agent.destroy()
  pool = null
}

serve({
  /** Opens `connections` keep-alive connections to `port` (a request each, answered 404), for the feeds that follow. */
  open: async ({ port, connections }: { port: number, connections: number }) => {
    shut()
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
    await Promise.all(Array.from({ length: connections }, () => request(agent, port, null)))
    pool = { port, agent }
    return Object.values(agent.freeSockets).reduce((sum, sockets) => sum + (sockets?.length ?? 0), 0)
  },

  /** Publishes `count` messages over the open pool; resolves once every one was answered. */
  feed: async ({ port, rate, count, firstSeq, inFlight }: Feed) => {
    if (pool?.port !== port) throw new Error(`no connections open to port ${port}`)
    const { agent } = pool
    let sent = 0
    let answered = 0
    let failures = 0
    let firstError: string | null = null
    const start = nowUs()
    await new Promise<void>((resolve) => {
      const send = (): void => {
        // Open loop: what is due by now, from a 1 ms timer (no busy loop); closed loop: refill.
        const due = rate === 0 ? count : Math.min(count, Math.floor((nowUs() - start) * rate / 1e6) + 1)
        while (sent < due && sent - answered < inFlight) {
          const body = JSON.stringify({ stream: PUBLIC_STREAM, data: notification(firstSeq + sent++) })
          request(agent, port, body).then((status) => {
            if (status !== 202) throw new Error(`publish answered ${status}`)
          }).catch((err: Error) => {
            failures++
            firstError ??= err.message
          }).finally(() => {
            answered++
            if (answered === count) resolve()
            else if (rate === 0) send()
          })
        }
        if (rate > 0 && sent < count) setTimeout(send, 1)
      }
      send()
    })
    const seconds = (nowUs() - start) / 1e6
    return { sent, failures, firstError, seconds: round(seconds, 3), ratePerSecond: round(count / seconds, 0) }
  },

  shut,

  close: () => { setImmediate(() => process.exit(0)) }
}, { pid: process.pid })
