// The browser's own EventSource resumes across instances (SPEC section 14): two example-app
// processes on a private Redis behind a TCP front that sends each new connection to the first
// instance that accepts it, as a load balancer would; the page's instance is SIGTERMed while
// messages are published, and EventSource's reconnect (Last-Event-ID) brings every one, once.

import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import t from 'tap'
import { exampleProcess, login } from './example-process.js'
import { API_KEY, SECRET, publish } from './helpers.js'
import { CHROMIUM, openBrowser } from './browser-helpers.js'
import { redisServer } from './redis-server.js'
import { existsSync } from 'node:fs'

/** Accepts on a port of its own and pipes each connection to the first backend that accepts it. */
async function front (backends: () => number[]): Promise<{ port: number, server: Server }> {
  const open = new Set<Socket>()
  const server = createServer((client) => {
    open.add(client)
    client.once('close', () => open.delete(client))
    client.pause()
    const tryNext = (left: number[]): void => {
      if (left.length === 0) {
        client.destroy()
        return
      }
      const upstream = tcpConnect(left[0], '127.0.0.1')
      upstream.once('error', () => tryNext(left.slice(1)))
      upstream.once('connect', () => {
        upstream.removeAllListeners('error')
        upstream.on('error', () => client.destroy())
        client.on('error', () => upstream.destroy())
        upstream.once('close', () => client.destroy())
        client.once('close', () => upstream.destroy())
        client.pipe(upstream).pipe(client)
        client.resume()
      })
    }
    tryNext(backends())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  server.on('close', () => { for (const socket of open) socket.destroy() })
  return { port: (server.address() as { port: number }).port, server }
}

t.test('EventSource resumes every message once after its instance is SIGTERMed', { skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}` }, async (t) => {
  const redis = await redisServer(t)
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ORDER_STEP_MS: '0' }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])
  const ports = [a, b].map((p) => Number(new URL(p.http).port))
  const { port, server } = await front(() => ports)
  t.teardown(() => server.close())
  const base = `http://127.0.0.1:${port}`
  const { page, errors } = await openBrowser(t)
  // A page of the edge's origin with no script of its own: the EventSource below is the only client.
  await page.goto(`${base}/health`)
  const jwt = await login(a.http, 'alice')
  const access = await (await fetch(`${a.http}/sse/access`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })).json() as { access: string }

  await page.evaluate((url) => {
    const w = window as unknown as { received: unknown[], opened: number, source: EventSource }
    w.received = []
    w.opened = 0
    const source = new EventSource(url)
    w.source = source
    source.addEventListener('subscribed', () => { w.opened++ })
    source.addEventListener('message', (event) => { w.received.push(JSON.parse(event.data)) })
  }, `/sse?streams=order,promotional&access=${access.access}`)
  await page.waitForFunction(() => (window as unknown as { opened: number }).opened === 1)

  const published: string[] = []
  const order = async (on: string, n: number): Promise<void> => {
    const res = await publish(on, { stream: 'order', user: 'alice', data: { orderId: `o${n}`, status: 'placed', n } })
    t.equal(res.status, 202)
    published.push(res.body.id as string)
  }
  for (let n = 1; n <= 3; n++) await order(a.http, n)
  await page.waitForFunction(() => (window as unknown as { received: unknown[] }).received.length === 3)

  // The page is on A (the front's first choice). Stop A; publish on B while the browser waits to reconnect.
  const stopped = a.stop()
  ports.shift()
  for (let n = 4; n <= 8; n++) await order(b.http, n)
  await stopped
  await page.waitForFunction(() => (window as unknown as { opened: number }).opened === 2, undefined, { timeout: 20_000 })
    .catch((err: Error) => { throw new Error(`${err.message}; page errors: ${errors.join('; ')}; A: ${a.output().slice(-3000)}`) })
  await order(b.http, 9)
  await page.waitForFunction((count) => (window as unknown as { received: unknown[] }).received.length >= count, published.length, { timeout: 10_000 })
  const received = await page.evaluate(() => (window as unknown as { received: Array<{ id: string, stream: string }> }).received)
  t.same(received.filter((m) => m.stream === 'order').map((m) => m.id), published, 'every order message, in order, once, across the restart')
  t.equal(await page.evaluate(() => (window as unknown as { source: EventSource }).source.readyState), 1, 'EventSource is open again, on B')
  t.same(errors.filter((e) => !/favicon|404 \(Not Found\)/.test(e)), [], `no page errors: ${errors.join('; ')}`)
})
