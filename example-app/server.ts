import { serve } from '../bin/serve.js'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'
import { startTracing } from './tracing.js'

const { config, warnings } = loadConfig()
const stopTracing = config.otlpEndpoint === undefined ? null : startTracing()
const app = await buildApp(config)
if (stopTracing !== null) app.addHook('onClose', stopTracing)
for (const warning of warnings) app.log.warn(warning)
await serve(app, { port: config.port, host: config.host })
