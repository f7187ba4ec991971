import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { buildApp } from '../example-app/app.js'
import { loadConfig } from '../example-app/config.js'
import { API_KEY, SECRET } from './helpers.js'

type Test = { teardown: (fn: () => unknown) => void }

/** Debian's chromium; CHROMIUM_PATH overrides it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))
const CLIENT_BUILD = fileURLToPath(new URL('../dist/client/index.js', import.meta.url))

const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync'
]

/** Why the browser test cannot run here, or null when it can. */
export function browserProblem (): string | null {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`
  if (!existsSync(CLIENT_BUILD)) return 'dist/client is not built: run `npm run build` (npm test does)'
  return null
}

/** A fresh headless Chromium profile with one page; page errors are collected in `errors`. */
export async function openBrowser (t: Test): Promise<{ context: BrowserContext, page: Page, errors: string[] }> {
  const profile = await mkdtemp(join(tmpdir(), 'notify-edge-chromium-'))
  t.teardown(() => rm(profile, { recursive: true, force: true }))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1000, height: 720 }
  })
  t.teardown(() => context.close())
  const page = context.pages()[0] ?? await context.newPage()
  page.setDefaultTimeout(10_000)
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()) })
  page.on('response', (response) => { if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`) })
  return { context, page, errors }
}

export async function screenshot (page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true })
  const path = join(ARTIFACTS, name)
  await page.screenshot({ path, fullPage: true })
  return path
}

/** The order statuses the feed shows for `orderId`, oldest first. */
export async function orderFeed (page: Page, orderId?: string): Promise<Array<{ id: string, status: string }>> {
  const items = await page.locator('#feed li[data-stream="order"]').evaluateAll((nodes) =>
    nodes.map((node) => ({ id: (node as HTMLElement).dataset.id!, status: (node as HTMLElement).dataset.status!, order: (node as HTMLElement).dataset.order! })))
  return items.reverse().filter((item) => orderId === undefined || item.order === orderId).map(({ id, status }) => ({ id, status }))
}

/** The example app in this process, listening on a free port, with quick order steps; closed at teardown. */
export async function exampleApp (t: Test): Promise<{ app: FastifyInstance, url: string }> {
  const { config } = loadConfig({ PORT: '0', JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ORDER_STEP_MS: '150' })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/` }
}
