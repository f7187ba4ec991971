import type { AddressInfo } from 'node:net'
import t from 'tap'
import webpush from 'web-push'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { browserProblem, openBrowser, screenshot } from './browser-helpers.js'
import { API_KEY, SECRET } from './helpers.js'

const problem = browserProblem()

t.test('with VAPID keys the demo page registers a service worker, and says so when the browser has no push service (headless Chromium)', { skip: problem ?? false }, async (t) => {
  const keys = webpush.generateVAPIDKeys()
  const { config } = loadConfig({
    PORT: '0',
    JWT_SECRET: SECRET,
    PUBLISH_API_KEY: API_KEY,
    VAPID_PUBLIC_KEY: keys.publicKey,
    VAPID_PRIVATE_KEY: keys.privateKey,
    VAPID_SUBJECT: 'mailto:ops@example.com'
  })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`

  const { context, page, errors } = await openBrowser(t)
  // Permission granted, so what fails is the push service itself, not the user's choice.
  await context.grantPermissions(['notifications'], { origin: url })
  await page.goto(url)
  await page.fill('#user', 'alice')
  await page.click('#login button[type="submit"]')
  await page.waitForSelector('#state[data-state="live"]')
  const push = page.locator('#push:not([hidden])')
  await push.waitFor({ timeout: 20_000 })
  t.equal(await push.getAttribute('data-state'), 'unavailable')
  t.match(await push.textContent(), /This browser has no push service \(.+\): offline notifications cannot reach it\./)
  t.ok(await page.evaluate(async () => (await navigator.serviceWorker.getRegistration('/'))?.active?.scriptURL.endsWith('/sw.js')), 'the service worker is registered and active')
  t.same(await app.notifyOffline.subscriptions!.list('alice'), [], 'nothing registered without a push service')
  await screenshot(page, 'browser-demo-push-unavailable.png')
  t.same(errors, [], 'no errors in the page')
})

t.test('without VAPID keys the page says nothing about push', { skip: problem ?? false }, async (t) => {
  const { config } = loadConfig({ PORT: '0', JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { page, errors } = await openBrowser(t)
  await page.goto(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`)
  await page.fill('#user', 'alice')
  await page.click('#login button[type="submit"]')
  await page.waitForSelector('#state[data-state="live"]')
  t.equal(await page.locator('#push').getAttribute('hidden'), '')
  t.equal(app.hasDecorator('notifyOffline'), false)
  t.same(errors, [])
})
