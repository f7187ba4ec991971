import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { API_KEY, SECRET, claims, connect, signJwt, ticket, type Client } from './helpers.js'
import { exampleProcess, type ExampleProcess } from './example-process.js'
import { redisServer, until } from './redis-server.js'

type Test = Parameters<Parameters<typeof t.test>[0]>[0]
interface OtlpSpan { traceId: string, spanId: string, parentSpanId?: string, name: string, attributes: Array<{ key: string, value: Record<string, unknown> }> }

/** An OTLP/HTTP (JSON) receiver: the spans every POST /v1/traces carried. */
async function otlpReceiver (t: Test): Promise<{ url: string, spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = []
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.url === '/v1/traces' && request.headers['content-type']?.startsWith('application/json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
        for (const resource of body.resourceSpans) for (const scope of resource.scopeSpans) spans.push(...scope.spans)
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans }
}

async function userSocket (t: Test, app: ExampleProcess, jwt: string): Promise<Client> {
  const { client } = await connect(t, `${app.ws}/ws?ticket=${await ticket(app.http, jwt)}`)
  await client.subscribe('order')
  return client
}

t.test('two example-app processes with OTEL_EXPORTER_OTLP_ENDPOINT export one trace: publish and a delivery per instance', async (t) => {
  const [redis, receiver] = await Promise.all([redisServer(t), otlpReceiver(t)])
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, ORDER_STEP_MS: '60000' }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])
  const jwt = signJwt(claims('alice'), 'HS256')
  const sockets = [await userSocket(t, a, jwt), await userSocket(t, b, jwt)]
  const traceId = randomBytes(16).toString('hex')
  const parent = randomBytes(8).toString('hex')
  const res = await fetch(`${a.http}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, traceparent: `00-${traceId}-${parent}-01` },
    body: JSON.stringify({ stream: 'order', user: 'alice', data: { orderId: 'o-1', status: 'placed' } })
  })
  t.equal(res.status, 202)
  for (const socket of sockets) await socket.event('message')
  const ofTrace = (): OtlpSpan[] => receiver.spans.filter((span) => span.traceId === traceId)
  await until('the exported spans', () => ofTrace().filter((s) => s.name === 'notify deliver').length >= 2 && ofTrace().some((s) => s.name === 'notify publish'), 10_000)
  const publish = ofTrace().filter((s) => s.name === 'notify publish')
  t.equal(publish.length, 1)
  t.equal(publish[0].parentSpanId, parent, "continues the producer's traceparent")
  const deliveries = ofTrace().filter((s) => s.name === 'notify deliver')
  t.equal(deliveries.length, 2, 'one delivery span from each process')
  for (const span of deliveries) {
    t.equal(span.parentSpanId, publish[0].spanId)
    t.same(span.attributes.find((a) => a.key === 'notify.sockets')?.value, { intValue: 1 })
  }
})

t.test('tracing on with a collector that is down or hangs: every message is still delivered', async (t) => {
  const redis = await redisServer(t)
  let exports = 0
  const hanging = createServer(() => { exports++ })
  hanging.listen(0, '127.0.0.1')
  await once(hanging, 'listening')
  t.teardown(() => { hanging.closeAllConnections(); hanging.close() })
  const closed = createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const deadPort = (closed.address() as AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, ORDER_STEP_MS: '60000' }
  const [down, slow] = await Promise.all([
    exampleProcess(t, { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${deadPort}` }),
    exampleProcess(t, { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}` })
  ])
  const jwt = signJwt(claims('bob'), 'HS256')
  const sockets = [await userSocket(t, down, jwt), await userSocket(t, slow, jwt)]
  const sent: string[] = []
  for (let i = 0; i < 40; i++) {
    const via = i % 2 === 0 ? down : slow
    const res = await fetch(`${via.http}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` },
      body: JSON.stringify({ stream: 'order', user: 'bob', data: { orderId: String(i), status: 'placed' } })
    })
    t.equal(res.status, 202)
    sent.push(((await res.json()) as { id: string }).id)
  }
  for (const socket of sockets) {
    const got: string[] = []
    while (got.length < sent.length) got.push((await socket.event('message', 10_000)).id)
    t.same(got, sent, 'every message, in order')
  }
  await until('an export attempt to the hanging collector', () => exports > 0, 10_000)
})
