#!/usr/bin/env node
// The dedicated edge (SPEC section 11): `npx fastify-notify-edge`, configured by environment.
// A bad or missing setting ends it with one line on stderr and exit code 1, never a stack trace.
import { loadEdgeConfig, loadMethods, loadStreams } from './config.js'
import { buildEdge } from './edge.js'
import { serve } from './serve.js'

function fail (err: unknown): never {
  const { code, message } = err as { code?: string, message?: string }
  process.stderr.write(`fastify-notify-edge: cannot start: ${code === undefined ? '' : `${code} `}${String(message ?? err).split('\n')[0]}\n`)
  process.exit(1)
}

const { config, warnings } = await loadEdgeConfig().catch(fail)
const streams = await loadStreams(config.streamsConfig).catch(fail)
const methods = await loadMethods(config.methodsConfig).catch(fail)
const app = await buildEdge(config, streams, undefined, methods).catch(fail)
for (const warning of warnings) app.log.warn(warning)

await serve(app, { port: config.port, host: config.host }).catch(async (err: unknown) => {
  await app.close()
  fail(err)
})
