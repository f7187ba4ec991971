import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import SwaggerParser from '@apidevtools/swagger-parser'
import { Parser } from '@asyncapi/parser'
import swagger from '@fastify/swagger'
import { Ajv } from 'ajv'
import Fastify from 'fastify'
import t from 'tap'
import { loadConfig } from '../example-app/config.js'
import { STREAMS, buildApp } from '../example-app/app.js'
import { asyncApiDocument, notifyEdge } from '../plugins/index.js'
import { API_KEY, SECRET, build, registrationError } from './helpers.js'
import { root } from './packed.js'

type Json = Record<string, any>

/** Diagnostics of the AsyncAPI parser, except its advice to move to a newer minor version. */
async function asyncApiProblems (document: unknown): Promise<string[]> {
  const { diagnostics } = await new Parser().parse(JSON.stringify(document))
  return diagnostics
    .filter((diagnostic) => diagnostic.code !== 'asyncapi-latest-version' && diagnostic.severity <= 1)
    .map((diagnostic) => `${diagnostic.code} at ${diagnostic.path.join('.')}: ${diagnostic.message}`)
}

t.test('OpenAPI through @fastify/swagger: a valid document with the publish body per declared stream', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(swagger, {
    openapi: {
      info: { title: 'edge', version: '1.0.0' },
      components: {
        securitySchemes: {
          notifyApiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
          notifyBearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }
        }
      }
    }
  })
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, publishApi: { apiKey: API_KEY }, metrics: {}, asyncapi: {} })
  await app.ready()
  const document = app.swagger() as Json
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never), 'swagger-parser finds the document valid')

  t.same(Object.keys(document.paths).sort(), ['/notifications', '/presence', '/ws/ticket'], 'the HTTP API only: no WebSocket, metrics or AsyncAPI route')
  const presence = document.paths['/presence'].get
  t.same(presence.security, [{ notifyApiKey: [] }])
  t.same(presence.parameters.map((parameter: Json) => `${parameter.in} ${parameter.name}`).sort(), ['query key', 'query stream', 'query user'])
  const publish = document.paths['/notifications'].post
  t.same(publish.security, [{ notifyApiKey: [] }])
  t.same(Object.keys(publish.responses).sort(), ['202', '400', '401', '503'])
  const body = publish.requestBody.content['application/json'].schema
  t.same(body.oneOf.map((variant: Json) => variant.title), [
    'order to one user', 'order to several users', 'reward to one user', 'reward to several users',
    'promotional to everyone subscribed', 'system to everyone subscribed',
    'room to one key', 'room to several keys', 'order-status to one key', 'order-status to several keys'
  ])
  t.same(body.oneOf[0].properties.data.required, ['orderId', 'status'], 'the order stream\'s TypeBox schema')
  t.same(document.paths['/ws/ticket'].post.security, [{ notifyBearer: [] }])

  // The document is accurate: what its body schema accepts, the API accepts, and the other way round.
  const documented = new Ajv({ strict: false }).compile(body)
  const edge = await build(t)
  const bodies = [
    { stream: 'order', user: 'alice', data: { orderId: '1', status: 'paid' } },
    { stream: 'order', users: ['alice', 'bob'], data: { orderId: '1', status: 'paid' } },
    { stream: 'promotional', data: { text: 'hi' } },
    { stream: 'order', data: { orderId: '1', status: 'paid' } },
    { stream: 'order', user: 'alice', data: { orderId: 1, status: 'paid' } },
    { stream: 'order', user: 'alice', users: ['bob'], data: { orderId: '1', status: 'paid' } },
    { stream: 'promotional', user: 'alice', data: {} },
    { stream: 'nope', data: {} },
    { stream: 'system', data: {}, extra: true },
    { stream: 'order', users: [], data: { orderId: '1', status: 'paid' } },
    { stream: 'order', user: '', data: { orderId: '1', status: 'paid' } }
  ]
  for (const sent of bodies) {
    const res = await edge.app.inject({ method: 'POST', url: '/notifications', headers: { 'x-api-key': API_KEY }, payload: sent })
    t.equal(documented(sent), res.statusCode === 202, `${JSON.stringify(sent)}: documented ${documented(sent)}, answered ${res.statusCode}`)
  }
})

t.test('GET /asyncapi.json: a valid AsyncAPI 3 document of the WebSocket routes and every declared stream', async (t) => {
  const edge = await build(t, { asyncapi: { info: { title: 'edge', version: '2.0.0' }, servers: { local: { host: '127.0.0.1:3000', protocol: 'ws' } } } })
  const res = await fetch(`${edge.http}/asyncapi.json`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /application\/json/)
  const document = await res.json() as Json
  t.same(await asyncApiProblems(document), [], '@asyncapi/parser reports no error and no warning')
  t.equal(document.asyncapi, '3.0.0')
  t.same(document.info, { title: 'edge', version: '2.0.0' })
  t.same(Object.keys(document.servers), ['local'])
  t.same(Object.values(document.channels as Record<string, Json>).map((channel) => channel.address), ['/ws', '/public'])
  const streamsOn = (id: string): string[] => Object.keys(document.channels[id].messages).filter((name) => name.startsWith('stream-'))
  t.same(streamsOn('ws'), ['stream-order', 'stream-reward', 'stream-promotional', 'stream-system', 'stream-room', 'stream-order-status'])
  t.same(streamsOn('public'), ['stream-promotional', 'stream-system'], 'the anonymous route carries public streams (and channels that allow anonymous sockets) only')
  const order = document.components.messages['stream-order'].payload
  t.same(order.properties.data.required, ['orderId', 'status'])
  t.equal(order.properties.stream.const, 'order')
  t.ok(document.channels.ws.bindings.ws.query.properties.ticket, 'the handshake credential is described')
  t.equal(document.operations['ws-receive-subscribe'].action, 'receive')
  t.equal(document.operations['ws-send-stream-order'].action, 'send')
  t.equal(document.operations['public-send-stream-order'], undefined)
})

t.test('the AsyncAPI document describes custom routes and plain JSON schemas too', async (t) => {
  const streams = [{ name: 'news', kind: 'public' as const, schema: { type: 'object', required: ['title'] } }, { name: 'inbox', kind: 'private' as const }]
  const document = asyncApiDocument((await build(t, { streams, routes: [{ path: '/live/socket' }] })).app.notify.streams.values(), { routes: [{ path: '/live/socket' }] })
  t.same(await asyncApiProblems(document), [])
  t.same(Object.keys(document.channels as Json), ['live-socket'])
  t.same((document.components as Json).messages['stream-news'].payload.properties.data, { type: 'object', required: ['title'] })
  t.same((document.components as Json).messages['stream-inbox'].payload.properties.data, {}, 'no schema: any data')
})

t.test('a bad asyncapi option fails registration with FST_NOTIFY_INVALID_OPTION', async (t) => {
  t.equal((await registrationError({ asyncapi: { path: 'asyncapi.json' } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal((await registrationError({ asyncapi: { routes: '/ws' } }))?.code, 'FST_NOTIFY_INVALID_OPTION')
})

t.test('docs/asyncapi.json is the example app\'s document (regenerate: npm run docs:asyncapi)', async (t) => {
  const { config } = loadConfig({ JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY })
  const app = await buildApp(config, false)
  t.teardown(() => app.close())
  const served = await app.inject({ method: 'GET', url: '/asyncapi.json' })
  const committed = JSON.parse(readFileSync(join(root, 'docs', 'asyncapi.json'), 'utf8')) as Json
  t.same(committed, served.json(), 'docs/asyncapi.json is up to date')
  t.same(await asyncApiProblems(committed), [])
})
