// The demo page against the split example (SPEC section 11): auth service, order service
// (publisher only) and dedicated edge as separate processes on one Redis, the page unchanged.
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { browserProblem, openBrowser, orderFeed, screenshot } from './browser-helpers.js'
import { serverProcess, type ExampleProcess } from './example-process.js'
import { freePort, redisServer, until } from './redis-server.js'

const DIST = fileURLToPath(new URL('../dist/example-app/split/', import.meta.url))
const DEV_KEY = 'notify-edge-development-api-key'
const problem = browserProblem()
// Eight process starts and a browser: more than the default per-file limit on a busy machine.
t.setTimeout(360_000)

type Test = { teardown: (fn: () => unknown) => void }

async function splitEnv (t: Test): Promise<Record<string, string>> {
  const redis = await redisServer(t)
  return {
    REDIS_URL: redis.url,
    PORT: String(await freePort()),
    AUTH_PORT: String(await freePort()),
    ORDERS_PORT: String(await freePort()),
    ORDER_STEP_MS: '150'
  }
}

const role = (t: Test, name: string, env: Record<string, string>): Promise<ExampleProcess> =>
  serverProcess(t, process.execPath, [`${DIST}server.js`, name], env)

async function healthy (env: Record<string, string>): Promise<boolean> {
  const ports = [env.PORT, env.AUTH_PORT, env.ORDERS_PORT]
  const answers = await Promise.all(ports.map((port) => fetch(`http://127.0.0.1:${port}/health`).then((res) => res.ok, () => false)))
  return answers.every(Boolean)
}

async function logIn (page: Awaited<ReturnType<typeof openBrowser>>['page'], edge: string): Promise<void> {
  await page.goto(`${edge}/`)
  await page.fill('#user', 'alice')
  await page.click('#login button[type="submit"]')
  await page.waitForSelector('#state[data-state="live"]', { timeout: 30_000 })
}

t.test('npm run start:split: the page places an order through the split set-up and sees placed → paid → shipped', { skip: problem ?? false }, async (t) => {
  const env = await splitEnv(t)
  // The launcher inherits stdio to its three children: it "listens" when the first of them does.
  await serverProcess(t, process.execPath, [`${DIST}start.js`], env)
  await until('the three services to answer', () => healthy(env), 30_000)
  const { page, errors } = await openBrowser(t)
  const edge = `http://127.0.0.1:${env.PORT}`
  await logIn(page, edge)
  await page.click('#order')
  await page.waitForSelector('#orders li[data-status="shipped"]', { timeout: 30_000 })
  t.same((await orderFeed(page)).map((u) => u.status), ['placed', 'paid', 'shipped'])
  t.equal(await page.locator('#order').getAttribute('data-via'), 'rpc', 'placed over the socket: the edge forwarded orders.place to the order service')
  await page.click('#promo')
  await page.waitForSelector('#feed li[data-stream="promotional"]')

  // A room: the edge asks the order service who may use it (the channel's authorize is its URL).
  await page.fill('#room', 'lobby')
  await page.click('#join-room button')
  await page.waitForSelector('#members[data-members="alice"]')
  await page.fill('#text', 'hello through the split edge')
  await page.click('#say button')
  await page.waitForFunction(() => [...document.querySelectorAll('#chat li')].some((li) => li.textContent === 'alice: hello through the split edge'))
  t.pass('alice joined a room the order service let her into, and her line came back over the socket')
  await screenshot(page, 'browser-split.png')
  t.same(errors, [], 'no page errors: CORS lets the page call the auth and order services')
  await page.fill('#room', 'support-desk')
  await page.click('#join-room button')
  await page.waitForSelector('#chat[data-refused="room:support-desk"]', { state: 'attached' })
  t.pass('a support room is refused: the order service\'s rule, asked by the edge')
})

t.test('with two edges, the page resumes across a restart of its edge and shows every update published meanwhile, once', { skip: problem ?? false }, async (t) => {
  const env = await splitEnv(t)
  await role(t, 'auth', env)
  await role(t, 'orders', env)
  const first = await role(t, 'edge', env)
  const second = await role(t, 'edge', { ...env, PORT: String(await freePort()) })
  const { page, errors } = await openBrowser(t)
  await logIn(page, first.http)
  await page.click('#order')
  await page.waitForSelector('#orders li[data-status="shipped"]', { timeout: 30_000 })
  const before = await orderFeed(page)

  t.equal(await first.stop(), 0, 'the edge drains and exits')
  await page.waitForSelector('#state[data-state="reconnecting"]')
  // Meanwhile: an order through the order service (its publisher writes to Redis, no edge needed)
  // and updates through the other edge's publish API.
  const placed = await fetch(`http://127.0.0.1:${env.ORDERS_PORT}/orders`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice' })
  })
  t.equal(placed.status, 202)
  const { orderId } = await placed.json() as { orderId: string }
  const published: string[] = []
  for (let n = 1; n <= 3; n++) {
    const res = await fetch(`${second.http}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': DEV_KEY },
      body: JSON.stringify({ stream: 'order', user: 'alice', data: { orderId: 'while-offline', status: `update ${n}` } })
    })
    t.equal(res.status, 202)
    published.push(((await res.json()) as { id: string }).id)
  }
  await role(t, 'edge', env)

  await page.waitForSelector('#state[data-state="live"]', { timeout: 30_000 })
  await page.waitForSelector(`#orders li[data-order="${orderId}"][data-status="shipped"]`, { timeout: 30_000 })
  await page.waitForFunction((count) => document.querySelectorAll('#feed li[data-stream="order"]').length >= count, before.length + 6)
  const after = await orderFeed(page)
  t.same(after.slice(0, before.length), before)
  const ids = after.map((u) => u.id)
  t.equal(new Set(ids).size, ids.length, 'no duplicate')
  t.same(ids.filter((id) => published.includes(id)), published, 'the other edge\'s updates, in order')
  t.same((await orderFeed(page, orderId)).map((u) => u.status), ['placed', 'paid', 'shipped'], 'the order placed meanwhile, in order')
  t.same(await page.locator('#feed li[data-stream="system"]').allTextContents(), [], 'no gap')
  await screenshot(page, 'browser-split-resume.png')
  t.same(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource|ws\/ticket/.test(e)), [], 'no page errors besides the refused reconnects')
})
