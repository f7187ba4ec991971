// The demo page's channels in Chromium (SPEC sections 7 and 12): a chat room (join, members,
// lines live and after a reload) and an order followed by support staff.
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Page } from 'playwright-core'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { browserProblem, openBrowser, screenshot } from './browser-helpers.js'
import { API_KEY, SECRET } from './helpers.js'

const problem = browserProblem()

async function logIn (page: Page, url: string, user: string): Promise<void> {
  await page.goto(url)
  await page.fill('#user', user)
  await page.click('#login button[type="submit"]')
  await page.waitForSelector('#state[data-state="live"]')
}

t.test('a chat room and an order followed by support, in the demo page', { skip: problem ?? false }, async (t) => {
  const { config } = loadConfig({ PORT: '0', JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ORDER_STEP_MS: '1500' })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/`
  const { context, page: alice, errors } = await openBrowser(t)

  await logIn(alice, url, 'alice')
  await alice.fill('#room', 'lobby')
  await alice.click('#join-room button')
  await alice.waitForSelector('#members[data-members="alice"]')

  const bob = await context.newPage()
  await logIn(bob, url, 'bob')
  await bob.waitForSelector('#members[data-members="alice,bob"]')
  await alice.waitForSelector('#members[data-members="alice,bob"]')
  t.pass('bob joined the room he was in last (this profile), and alice saw him join')

  await bob.fill('#text', 'hello from bob')
  await bob.click('#say button')
  await alice.waitForFunction(() => [...document.querySelectorAll('#chat li')].some((li) => li.textContent === 'bob: hello from bob'))
  t.pass('the line arrived live')

  await alice.reload()
  await logIn(alice, url, 'alice')
  await alice.waitForFunction(() => [...document.querySelectorAll('#chat li')].some((li) => li.textContent === 'bob: hello from bob'))
  t.pass('and after a reload, from the room\'s history')
  await bob.close()
  await alice.waitForSelector('#members[data-members="alice"]')
  t.pass('bob left')
  await screenshot(alice, 'browser-chat-room.png')

  await alice.click('#order')
  const card = alice.locator('#orders li[data-order]').first()
  await card.waitFor()
  const orderId = (await card.getAttribute('data-order'))!
  const support = await context.newPage()
  await logIn(support, url, 'support-sam')
  await support.fill('#follow-id', orderId)
  await support.click('#follow button')
  await support.waitForSelector(`#followed li[data-order="${orderId}"][data-status="shipped"]`, { timeout: 10_000 })
  t.pass('support-sam followed alice\'s order to shipped')

  const mallory = await context.newPage()
  await logIn(mallory, url, 'mallory')
  await mallory.fill('#follow-id', orderId)
  await mallory.click('#follow button')
  await mallory.waitForSelector(`#followed[data-refused="order-status:${orderId}"]`)
  t.pass('anyone else is refused')
  await screenshot(support, 'browser-order-followed.png')
  t.same(errors, [], 'no errors in the page')
})
