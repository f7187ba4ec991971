import t from 'tap'
import { Server, ServerCredentials, type ServerDuplexStream, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js'
import { notificationsService, type GrpcPublishReply, type GrpcPublishRequest, type GrpcPublishStreamReply } from '../plugins/index.js'
import { API_KEY, build, connectUser } from './helpers.js'
import { until } from './redis-server.js'
import { publisherApp } from './split-helpers.js'

// The publisher's gRPC transport publishes on one PublishStream call: reopened after it breaks,
// and unary Publish against an edge that has no PublishStream (an older edge).

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

/** A grpc-js server with the given methods (the others answer UNIMPLEMENTED), counting calls. */
async function grpcServer (t: Test, withStream: boolean) {
  const counts = { calls: 0, streamCalls: 0, messages: 0 }
  const server = new Server()
  const publish = (_call: ServerUnaryCall<GrpcPublishRequest, GrpcPublishReply>, callback: sendUnaryData<GrpcPublishReply>): void => {
    counts.calls++
    callback(null, { ids: [`unary-${counts.calls}`], offline: [] })
  }
  const publishStream = (call: ServerDuplexStream<GrpcPublishRequest, GrpcPublishStreamReply>): void => {
    counts.streamCalls++
    call.on('data', (request: GrpcPublishRequest) => {
      counts.messages++
      call.write({ ref: request.ref, ids: [`stream-${request.ref}`], offline: [], status: 0, errorCode: '', errorMessage: '' })
    })
    call.on('end', () => call.end())
  }
  server.addService((await notificationsService()).service, withStream ? { Publish: publish, PublishStream: publishStream } : { Publish: publish })
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, bound) => err === null ? resolve(bound) : reject(err)))
  t.teardown(() => server.forceShutdown())
  return { counts, address: `127.0.0.1:${port}` }
}

t.test('concurrent publishes go as messages of one PublishStream call, each answered by its ref', async (t) => {
  const edge = await grpcServer(t, true)
  const { app } = await publisherApp(t, { grpc: { address: edge.address, apiKey: API_KEY } })
  const results = await Promise.all(Array.from({ length: 50 }, () => app.notify.publish({ stream: 'promotional', data: {} }))) as Array<{ id: string }>
  t.same(new Set(results.map((r) => r.id)).size, 50, 'each its own answer')
  t.ok(results.every((r) => /^stream-\d+$/.test(r.id)))
  t.same(edge.counts, { calls: 0, streamCalls: 1, messages: 50 })
})

t.test('an edge without PublishStream is published to by unary Publish', async (t) => {
  const edge = await grpcServer(t, false)
  const { app } = await publisherApp(t, { grpc: { address: edge.address, apiKey: API_KEY } })
  const first = await Promise.all([1, 2, 3].map(() => app.notify.publish({ stream: 'promotional', data: {} }))) as Array<{ id: string }>
  t.same(first.map((r) => r.id).sort(), ['unary-1', 'unary-2', 'unary-3'], 'what was sent on the refused call goes again by unary')
  const next = await app.notify.publish({ stream: 'promotional', data: {} }) as { id: string }
  t.equal(next.id, 'unary-4', 'no stream is tried again')
})

t.test('a call the edge ended fails nothing later: the next publish opens a new one', async (t) => {
  const first = await build(t, { grpc: { apiKey: API_KEY, port: 0 } })
  const port = first.app.notifyGrpc.port!
  const { app } = await publisherApp(t, { grpc: { address: `127.0.0.1:${port}`, apiKey: API_KEY } })
  await app.notify.publish({ stream: 'promotional', data: 1 })
  await first.app.close()
  await t.rejects(app.notify.publish({ stream: 'promotional', data: 2 }), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' }, 'no edge: 503')
  const second = await build(t, { grpc: { apiKey: API_KEY, port } })
  const alice = await connectUser(t, second, 'alice')
  await alice.subscribe('promotional')
  await until('a publish to reach the new edge', () => app.notify.publish({ stream: 'promotional', data: 3 }).then(() => true, () => false), 10_000)
  t.equal((await alice.event('message')).data, 3)
})
