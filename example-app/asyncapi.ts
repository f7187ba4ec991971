// `npm run docs:asyncapi`: writes docs/asyncapi.json, the example app's AsyncAPI document, which a
// test keeps equal to what GET /asyncapi.json serves.
import { writeFileSync } from 'node:fs'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const { config } = loadConfig({ JWT_SECRET: 'only-to-build-the-document-0123456789', PUBLISH_API_KEY: 'only-to-build-the-document' })
const app = await buildApp(config, false)
const document = (await app.inject({ method: 'GET', url: '/asyncapi.json' })).json()
await app.close()
writeFileSync('docs/asyncapi.json', JSON.stringify(document, null, 2) + '\n')
