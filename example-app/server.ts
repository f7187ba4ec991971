import { serve } from '../bin/serve.js'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const { config, warnings } = loadConfig()
const app = await buildApp(config)
for (const warning of warnings) app.log.warn(warning)
await serve(app, { port: config.port, host: config.host })
