import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import fastifyStatic from '@fastify/static'

/** The first of `candidates` (relative to this file) holding `file`: paths differ between the sources and dist/. */
function locate (file: string, candidates: string[]): string | undefined {
  return candidates
    .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
    .find((dir) => existsSync(join(dir, file)))
}

// The page sits beside this file in the sources and two levels up from the build output.
const PUBLIC_DIR = locate('index.html', ['./public/', '../../example-app/public/'])
// The SDK is served as ES modules from the build output, whether this file runs from the sources or dist/.
const CLIENT_DIR = locate('index.js', ['../dist/client/', '../client/'])

/** Where the page finds the auth and order services; unset: on its own origin (one process). */
export interface PageServices { auth?: string, orders?: string }

/** The demo page, the SDK it loads, and `GET /demo/services` telling it where the other services are. */
export async function pageRoutes (app: FastifyInstance, services: PageServices = {}): Promise<void> {
  app.get('/demo/services', async () => services)
  if (PUBLIC_DIR !== undefined) await app.register(fastifyStatic, { root: PUBLIC_DIR })
  if (CLIENT_DIR !== undefined) {
    await app.register(fastifyStatic, { root: CLIENT_DIR, prefix: '/client/', decorateReply: false })
  } else {
    app.log.warn('dist/client is missing: run `npm run build` for the demo page to load the SDK')
  }
}
