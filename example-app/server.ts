import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const { config, warnings } = loadConfig()
const app = await buildApp(config)
for (const warning of warnings) app.log.warn(warning)

closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing')
  await app.close()
  app.log.info('closed')
})

await app.listen({ port: config.port, host: config.host })
