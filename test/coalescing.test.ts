import type { Socket } from 'node:net'
import t from 'tap'
import type { Connection } from '../plugins/streams/connection.js'
import { OutboundFrame } from '../plugins/streams/wire.js'
import { build, connectUser, type Client, type Edge } from './helpers.js'

// Write coalescing (`flushInterval`). Whether a frame is held or written is read off the socket's
// TCP stream (corked or not) between microtasks, where no timer can run: no assertion depends on
// timing. A 1000 ms interval keeps held frames held for the length of each check.

type Test = { teardown: (fn: () => unknown) => void }

interface Subscribed { edge: Edge, client: Client, connection: Connection, tcp: Socket, log: string[] }

/** An edge whose /ws route coalesces with `flushInterval`, and one client subscribed to `promotional`. */
async function subscribed (t: Test, flushInterval: number, route: Record<string, unknown> = {}): Promise<Subscribed> {
  const edge = await build(t, { routes: [{ path: '/ws', flushInterval, ...route }] })
  const client = await connectUser(t, edge, 'alice')
  await client.subscribe('promotional')
  const [connection] = edge.app.notifyStreams.get('/ws')!.connections
  const tcp = (connection.socket as unknown as { _socket: Socket })._socket
  // Everything the client gets, in arrival order: messages by their `n`, other frames by event.
  const log: string[] = []
  client.socket.on('message', (data) => {
    const frame = JSON.parse(data.toString())
    log.push(frame.event === 'message' ? `${frame.stream}:${String(frame.data.n)}` : frame.event)
  })
  client.socket.on('ping', () => log.push('ws-ping'))
  return { edge, client, connection, tcp, log }
}

/** Hands one `promotional` message to the connection, as the route's fan-out does. */
function deliver ({ connection }: Subscribed, n: number, pad = ''): void {
  const text = JSON.stringify({ event: 'message', stream: 'promotional', id: `m${n}`, ts: 0, data: { n, pad } })
  connection.deliver(new OutboundFrame(text), { topic: connection.topics.get('promotional')!, id: `m${n}`, frame: text })
}

/** Lets the current job end: every microtask runs, no timer and no setImmediate can. */
async function endOfJob (): Promise<void> {
  for (let i = 0; i < 3; i++) await Promise.resolve()
}

/** Lets the current event-loop iteration end: the setImmediate callbacks queued so far run. */
async function endOfIteration (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

async function until (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve))
}

/** What the client received once it has `n` frames. */
async function received (s: Subscribed, n: number): Promise<string[]> {
  await until(() => s.log.length === n)
  return s.log
}

/** `promotional` 1 to `n`, in order. */
function inOrder (n: number): string[] {
  return Array.from({ length: n }, (_, i) => `promotional:${i + 1}`)
}

/** Delivers 1 to an idle socket and lets it be written: the socket was flushed in this iteration. */
async function justFlushed (s: Subscribed): Promise<void> {
  deliver(s, 1)
  await endOfJob()
}

t.test('a lone message to an idle socket is written at the end of its job; one right after a write waits for the tick', async (t) => {
  const s = await subscribed(t, 1000)
  const route = s.edge.app.notifyStreams.get('/ws')!
  deliver(s, 1)
  t.equal(s.tcp.writableCorked, 1, 'corked while the job runs, so a burst leaves in one write')
  t.equal(route.heldSockets(), 0, 'not waiting for the tick')
  await endOfJob()
  t.equal(s.tcp.writableCorked, 0, 'written when the job ends, before any timer or I/O')
  t.equal(s.tcp.writableLength, 0, 'and handed to the kernel')

  deliver(s, 2)
  deliver(s, 3)
  await endOfJob()
  t.equal(s.tcp.writableCorked, 1, 'the socket was just written: later frames are held')
  t.ok(s.connection.socket.bufferedAmount > 0, 'and count in bufferedAmount')
  t.equal(route.heldSockets(), 1)
  t.same(await received(s, 3), inOrder(3), 'the tick writes them, in order')
  t.equal(route.heldSockets(), 0)
})

t.test('flushInterval 0 writes at the end of every job', async (t) => {
  const s = await subscribed(t, 0)
  deliver(s, 1)
  await endOfJob()
  t.equal(s.tcp.writableCorked, 0)
  deliver(s, 2)
  await endOfJob()
  t.equal(s.tcp.writableCorked, 0)
  t.equal(s.edge.app.notifyStreams.get('/ws')!.heldSockets(), 0)
  await until(() => s.log.length === 2)
  t.same(s.log, ['promotional:1', 'promotional:2'])
})

t.test('a socket holding a quarter of maxBufferedBytes (at most 16 KiB) hands it to the kernel at once', async (t) => {
  const s = await subscribed(t, 1000)
  await justFlushed(s)
  deliver(s, 2, 'x'.repeat(20_000))
  t.ok(s.tcp.writableLength > 16 * 1024, 'held: under the limit when it came')
  deliver(s, 3)
  t.ok(s.tcp.writableLength < 100, 'the next write sent it on, and holds only itself')
  t.same(await received(s, 3), inOrder(3))
})

t.test('a busy server: what comes in the iteration of a write is held, even past the interval', async (t) => {
  const s = await subscribed(t, 1)
  await justFlushed(s)
  // Fanning a message out to many sockets can take longer than flushInterval.
  const start = performance.now()
  while (performance.now() - start < 5);
  deliver(s, 2)
  await endOfJob()
  t.equal(s.edge.app.notifyStreams.get('/ws')!.heldSockets(), 1, '2 waits for the tick')
  t.equal(s.tcp.writableCorked, 1)
  t.same(await received(s, 2), inOrder(2))
})

t.test('held frames keep their order with ws pings, control replies and history replay', async (t) => {
  const s = await subscribed(t, 1000)
  const { id: since } = await s.edge.app.notify.publish({ stream: 'system', data: { n: 'h1' } }) as { id: string }
  await s.edge.app.notify.publish({ stream: 'system', data: { n: 'h2' } })

  await justFlushed(s)
  deliver(s, 2)
  s.connection.socket.ping()
  deliver(s, 3)
  await endOfJob()
  t.equal(s.tcp.writableCorked, 1, '2, the ping and 3 are held')
  s.client.send({ event: 'ping', id: 'p' })
  await until(() => s.log.includes('pong'))
  deliver(s, 4)
  await endOfJob()
  t.equal(s.tcp.writableCorked, 1, 'the pong was just written: 4 is held')
  s.client.send({ event: 'subscribe', streams: [{ stream: 'system', since }] })
  await until(() => s.log.includes('system:h2'))
  deliver(s, 5)
  await until(() => s.log.includes('promotional:5'))
  t.same(s.log, [
    'promotional:1', 'promotional:2', 'ws-ping', 'promotional:3', 'pong', 'promotional:4', 'subscribed', 'system:h2', 'promotional:5'
  ])
})

t.test('a close writes what is held before its close frame', async (t) => {
  const s = await subscribed(t, 1000)
  await justFlushed(s)
  deliver(s, 2)
  await endOfJob()
  t.equal(s.tcp.writableCorked, 1, '2 is held')
  s.connection.close(4003, 'revoked')
  t.equal(await s.client.closed, 4003)
  t.same(s.log, ['promotional:1', 'promotional:2'])
})

t.test('draining on app.close() writes what is held, then closes with 1001, and stops the tick', async (t) => {
  const s = await subscribed(t, 1000)
  const route = s.edge.app.notifyStreams.get('/ws')!
  await justFlushed(s)
  deliver(s, 2)
  await endOfJob()
  t.equal(route.heldSockets(), 1, '2 is held')
  await s.edge.app.close()
  t.equal(await s.client.closed, 1001)
  t.same(s.log, ['promotional:1', 'promotional:2'])
  t.equal(route.heldSockets(), 0)
})

t.test('a socket whose client stops reading still trips the slow-consumer limit: 1013, what was held written first', async (t) => {
  const limit = 64 * 1024
  const s = await subscribed(t, 1000, { maxBufferedBytes: limit })
  const route = s.edge.app.notifyStreams.get('/ws')!
  const client = (s.client.socket as unknown as { _socket: Socket })._socket
  client.pause()
  const pad = 'x'.repeat(4000)
  let n = 0
  let held = 0
  let maxBuffered = 0
  // One message per iteration: once the kernel's buffers are full, what is held and what the
  // kernel refused add up in bufferedAmount until the limit.
  while (route.stats.slowConsumerCloses === 0 && n < 100_000) {
    deliver(s, n++, pad)
    await endOfJob()
    if (route.heldSockets() > 0) held++
    maxBuffered = Math.max(maxBuffered, s.connection.socket.bufferedAmount)
    await endOfIteration()
  }
  t.equal(route.stats.slowConsumerCloses, 1)
  t.ok(held > 0, `frames were held in ${held} of ${n} iterations`)
  t.ok(maxBuffered <= limit + 4100, `bufferedAmount stayed within the limit and a frame (${maxBuffered})`)
  client.resume()
  t.equal(await s.client.closed, 1013)
  // The last delivery found the limit passed and was dropped; every one before it was written, in order.
  t.same(s.log, Array.from({ length: n - 1 }, (_, i) => `promotional:${i}`))
})

t.test('flushInterval is validated at registration', async (t) => {
  for (const flushInterval of [-1, 1.5, 1001, '1', null]) {
    await t.rejects(build(t, { routes: [{ path: '/ws', flushInterval: flushInterval as number }] }), { code: 'FST_NOTIFY_INVALID_OPTION' }, String(flushInterval))
  }
})
