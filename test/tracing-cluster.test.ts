import t from 'tap'
import { randomBytes } from 'node:crypto'
import { STREAMS } from '../example-app/app.js'
import { API_KEY, build, connectUser } from './helpers.js'
import { redisCluster } from './redis-cluster.js'
import { until } from './redis-server.js'
import { parentOf, traceSpans } from './tracing-sdk.js'

// On Redis Cluster the bus is sharded pub/sub with JSON messages, and the history script
// SPUBLISHes a cjson one: the trace rides on both.
t.test('on Redis Cluster, a traced publish is one trace with a delivery span per instance, with and without history', async (t) => {
  const setup = await redisCluster(t)
  const topicPrefix = `tc${randomBytes(4).toString('hex')}`
  const streams = [...STREAMS, { name: 'ticker', kind: 'public' as const }]
  const edges = await Promise.all([0, 1].map(() => build(t, { redis: { cluster: setup.nodes }, topicPrefix, tracing: true, streams })))
  for (const stream of ['order', 'ticker']) {
    const sockets = [await connectUser(t, edges[0], 'alice'), await connectUser(t, edges[1], 'alice')]
    for (const socket of sockets) await socket.subscribe(stream)
    const traceId = randomBytes(16).toString('hex')
    const parent = randomBytes(8).toString('hex')
    const res = await fetch(`${edges[1].http}/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, traceparent: `00-${traceId}-${parent}-01` },
      body: JSON.stringify(stream === 'order' ? { stream, user: 'alice', data: { orderId: '1', status: 'placed' } } : { stream, data: { n: 1 } })
    })
    t.equal(res.status, 202)
    for (const socket of sockets) await socket.event('message')
    await until('the spans', () => traceSpans(traceId).filter((s) => s.name === 'notify deliver').length === 2, 5000)
    const publish = traceSpans(traceId).filter((s) => s.name === 'notify publish')
    t.equal(publish.length, 1, `${stream}: one publish span`)
    t.equal(parentOf(publish[0]), parent)
    for (const span of traceSpans(traceId).filter((s) => s.name === 'notify deliver')) {
      t.equal(parentOf(span), publish[0].spanContext().spanId, `${stream}: a delivery parented on the publish`)
    }
  }
})
