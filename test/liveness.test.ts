import { once } from 'node:events'
import t from 'tap'
import { build, connect, ticket, token } from './helpers.js'

t.test('a socket that stops answering protocol pings is terminated; a live one stays', async (t) => {
  // Long enough that a live client on a loaded machine answers in time.
  const interval = 300
  const edge = await build(t, { routes: [{ path: '/ws', heartbeatInterval: interval }] })
  const url = async (): Promise<string> => `${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, 'alice'))}`
  const { client: dead } = await connect(t, await url(), { autoPong: false })
  const { client: live } = await connect(t, await url())
  const pings = { count: 0, bytes: 0 }
  live.socket.on('ping', (data: Buffer) => {
    pings.count++
    pings.bytes += data.length
  })

  const started = Date.now()
  t.equal(await dead.closed, 1006, 'terminated without a close frame')
  t.ok(Date.now() - started < 3 * interval, 'within two intervals')
  t.equal(edge.app.notifyStreams.get('/ws')!.stats.heartbeatTimeouts, 1)

  while (pings.count < 3 && live.closeCode === null) await Promise.race([once(live.socket, 'ping'), live.closed])
  await live.request({ event: 'ping' }, 'pong')
  t.equal(live.closeCode, null, 'the socket that answers pings is still open')
  t.equal(pings.bytes, 0, 'the pre-framed ping carries no payload')
  const stats = edge.app.notifyStreams.get('/ws')!.stats
  t.equal(stats.heartbeatTimeouts, 1)
  t.ok(stats.heartbeatSweeps >= 3 && stats.heartbeatSweepCpuUs > 0, 'sweeps and their CPU time are counted')
  t.ok(stats.heartbeatPings >= 3, 'and the pings they sent')
})

t.test('a socket whose client keeps sending frames is not pinged and stays; once silent it is pinged, then dropped', async (t) => {
  const interval = 300
  const edge = await build(t, { routes: [{ path: '/ws', heartbeatInterval: interval }] })
  const { client } = await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, 'alice'))}`, { autoPong: false })
  const pings: number[] = []
  client.socket.on('ping', () => { pings.push(Date.now()) })
  const stats = edge.app.notifyStreams.get('/ws')!.stats
  // An application ping every third of an interval, as the SDK's: its traffic runs both ways.
  const sweeps = stats.heartbeatSweeps
  const pingsBefore = stats.heartbeatPings
  let lastFrame = Date.now()
  while (stats.heartbeatSweeps < sweeps + 5) {
    await client.request({ event: 'ping' }, 'pong')
    lastFrame = Date.now()
    await new Promise((resolve) => setTimeout(resolve, interval / 3))
  }
  t.equal(client.closeCode, null, 'still open after five sweeps')
  t.ok(stats.heartbeatPings - pingsBefore <= 1, 'the sweeps counted no more pings than that')
  t.ok(pings.length <= 1, `no protocol ping while it talks (at most the first sweep's, before its first frame): ${pings.length}`)
  t.equal(await client.closed, 1006, 'silent and not answering the ping: terminated')
  t.ok(pings.length >= 1 && pings[pings.length - 1] > lastFrame, 'pinged once it fell silent')
  t.ok(Date.now() - lastFrame < 4 * interval, 'within three intervals of its last frame')
  t.equal(stats.heartbeatTimeouts, 1)
})

t.test('the application-level ping is answered with its correlation id', async (t) => {
  const edge = await build(t)
  const { client } = await connect(t, `${edge.ws}/public`)
  client.send({ event: 'ping', id: 'c3' })
  t.same(await client.event('pong'), { event: 'pong', id: 'c3' })
})

t.test('heartbeats can be turned off, and a bad interval fails registration', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', heartbeatInterval: false }] })
  const { client } = await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, 'alice'))}`, { autoPong: false })
  await client.request({ event: 'ping' }, 'pong')
  await t.rejects(build(t, { routes: [{ path: '/ws', heartbeatInterval: 0 }] }), { code: 'FST_NOTIFY_INVALID_OPTION' })
})
