import { existsSync } from 'node:fs'
import { chromium } from 'playwright-core'
import t from 'tap'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { urls } from './helpers.js'

// Debian's chromium (installed by .ci/run); CHROMIUM_PATH points elsewhere.
const executablePath = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']
  .find((path) => path !== undefined && existsSync(path))

t.test('the demo page logs in, connects and shows orders and promotions as they arrive', { skip: executablePath === undefined && 'no chromium found' }, async (t) => {
  const { config } = loadConfig({ NODE_ENV: 'test', ORDER_STEP_MS: '50' })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })

  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(urls(app).http)
  await page.fill('#user', 'alice')
  await page.click('#login button[type=submit]')
  await page.waitForSelector('#state[data-state="live"]')

  await page.click('#order')
  const shipped = page.locator('#feed li[data-stream="order"]', { hasText: 'shipped' })
  await shipped.waitFor()
  const orders = await page.locator('#feed li[data-stream="order"]').allTextContents()
  // The feed shows the newest first.
  t.same(orders.map((text) => /: (placed|paid|shipped)/.exec(text)?.[1]), ['shipped', 'paid', 'placed'])

  await page.click('#promo')
  await page.locator('#feed li[data-stream="promotional"]').waitFor()
  t.match(await page.locator('#feed li[data-stream="promotional"]').textContent(), /Promotion #1/)
  t.equal(await page.locator('#feed li[data-stream="error"]').count(), 0, 'no error shown')
})
