// The client SDK on Server-Sent Events, in Chromium, through the demo page's transport switch.

import type { Duplex } from 'node:stream'
import t from 'tap'
import { browserProblem, exampleApp, openBrowser, orderFeed } from './browser-helpers.js'

const problem = browserProblem()

t.test('transport sse: the demo page goes live on SSE, shows orders, and resumes after the response is cut', { skip: problem ?? false }, async (t) => {
  const { app, url } = await exampleApp(t)
  const { page, errors } = await openBrowser(t)
  await page.goto(url)
  await page.fill('#user', 'alice')
  await page.selectOption('#transport', 'sse')
  await page.click('#login button[type="submit"]')
  await page.waitForSelector('#state[data-state="live"]')
  const sse = app.notifyStreams.get('/sse')!
  t.equal(sse.connections.size, 1, 'one SSE response')
  t.equal(app.notifyStreams.get('/ws')!.connections.size, 0, 'no WebSocket')

  await page.click('#order')
  await page.locator('#orders li[data-order][data-status="shipped"]').waitFor()
  await page.click('#promo')
  await page.waitForSelector('#feed li[data-stream="promotional"]')

  // The server cuts the response: EventSource reconnects by itself, with Last-Event-ID.
  for (const connection of sse.connections) connection.socket.terminate()
  await page.waitForFunction(() => document.querySelectorAll('#feed li[data-stream="order"]').length === 3)
  await page.click('#order')
  await page.waitForFunction(() => document.querySelectorAll('#orders li[data-status="shipped"]').length === 2, undefined, { timeout: 15_000 })
  const ids = (await orderFeed(page)).map((u) => u.id)
  t.equal(ids.length, 6)
  t.equal(new Set(ids).size, 6, 'no update shown twice')
  // Cutting the response is a network error, which Chromium logs; nothing else may show.
  t.same(errors.filter((e) => !e.includes('ERR_INCOMPLETE_CHUNKED_ENCODING')), [], `no other errors in the page: ${errors.join('; ')}`)
})

t.test('transport auto: where the WebSocket upgrade is refused, the page falls back to SSE', { skip: problem ?? false }, async (t) => {
  const { app, url } = await exampleApp(t)
  // A proxy that strips Upgrade: the handshake never completes.
  app.server.prependListener('upgrade', (_request: unknown, socket: Duplex) => socket.destroy())
  const { page } = await openBrowser(t)
  await page.goto(url)
  await page.fill('#user', 'alice')
  await page.selectOption('#transport', 'auto')
  await page.click('#login button[type="submit"]')
  await page.waitForSelector('#state[data-state="live"]', { timeout: 15_000 })
  t.equal(app.notifyStreams.get('/sse')!.connections.size, 1, 'live on SSE')
  await page.click('#order')
  await page.locator('#orders li[data-order][data-status="shipped"]').waitFor()
  t.same((await orderFeed(page)).map((u) => u.status), ['placed', 'paid', 'shipped'])
})
