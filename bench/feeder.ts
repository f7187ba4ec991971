import http from 'node:http'
import { serve } from './lib/ipc.js'
import { API_KEY, PUBLIC_STREAM, notification, nowUs } from './lib/shared.js'
import { round } from './lib/stats.js'

// The publisher of the sustained scenario, a process of its own: one `POST /notifications` per
// message, over keep-alive connections, as another service would publish. Each publish reaches
// the server as its own request, so each is handled in its own event-loop turn there.

interface Feed {
  port: number
  /** Messages per second; 0: as fast as the server answers, `inFlight` requests at a time. */
  rate: number
  count: number
  firstSeq: number
  /** Most requests outstanding at once; an open-loop rate the server cannot take is capped here. */
  inFlight: number
}

function post (agent: http.Agent, port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/notifications',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-api-key': API_KEY }
    }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end(body)
  })
}

serve({
  /** Publishes `count` messages; resolves once every one was answered. */
  feed: async ({ port, rate, count, firstSeq, inFlight }: Feed) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight })
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
          post(agent, port, body).then((status) => {
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
    agent.destroy()
    return { sent, failures, firstError, seconds: round(seconds, 3), ratePerSecond: round(count / seconds, 0) }
  },

  close: () => { setImmediate(() => process.exit(0)) }
}, { pid: process.pid })
