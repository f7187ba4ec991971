import t, { type Test } from 'tap'
import { build, connectUser, publish, type Client, type Edge } from './helpers.js'

/** The connection still works: a ping gets its pong and a published message still arrives. */
async function stillWorks (t: Test, edge: Edge, client: Client, what: string): Promise<void> {
  t.same(await client.request({ event: 'ping' }, 'pong').then((f) => f.event), 'pong', `${what}: ping still answered`)
  const res = await publish(edge.http, { stream: 'order', user: 'alice', data: { orderId: what, status: 'placed' } })
  t.equal((await client.event('message')).id, res.body.id, `${what}: messages still arrive`)
}

// [what, frame sent, error code, fields the error frame echoes]
const BAD_FRAMES: Array<[string, string | Buffer, string, Record<string, unknown>?]> = [
  ['a binary frame', Buffer.from('{"event":"ping"}'), 'BAD_REQUEST'],
  ['invalid JSON', '{"event":', 'BAD_REQUEST'],
  ['an empty frame', '', 'BAD_REQUEST'],
  ['a JSON array', '[{"event":"ping"}]', 'BAD_REQUEST'],
  ['a JSON string', '"ping"', 'BAD_REQUEST'],
  ['JSON null', 'null', 'BAD_REQUEST'],
  ['a JSON number', '42', 'BAD_REQUEST'],
  ['an unknown event', '{"event":"shout","id":"u1"}', 'UNKNOWN_EVENT', { id: 'u1' }],
  ['a frame without event', '{"streams":["order"]}', 'UNKNOWN_EVENT'],
  ['an unknown stream', '{"event":"subscribe","streams":["nope"],"id":"s1"}', 'UNKNOWN_STREAM', { stream: 'nope', id: 's1' }],
  ['an unknown stream on unsubscribe', '{"event":"unsubscribe","streams":["nope"]}', 'UNKNOWN_STREAM', { stream: 'nope' }],
  ['a 10,000-item streams array', JSON.stringify({ event: 'subscribe', streams: Array(10_000).fill('a'), id: 'big' }), 'BAD_REQUEST', { id: 'big' }],
  ['streams that is not an array', '{"event":"subscribe","streams":"order"}', 'BAD_REQUEST'],
  ['an empty streams array', '{"event":"subscribe","streams":[]}', 'BAD_REQUEST'],
  ['a stream that is a number', '{"event":"subscribe","streams":[1]}', 'BAD_REQUEST'],
  ['a stream item that is null', '{"event":"unsubscribe","streams":[null]}', 'BAD_REQUEST'],
  ['a stream item without a name', '{"event":"subscribe","streams":[{"since":"1-0"}]}', 'BAD_REQUEST'],
  ['a since that is not a string', '{"event":"subscribe","streams":[{"stream":"order","since":5}]}', 'BAD_REQUEST'],
  ['a since that is too long', JSON.stringify({ event: 'subscribe', streams: [{ stream: 'order', since: '1'.repeat(65) }] }), 'BAD_REQUEST'],
  ['an id that is an object', '{"event":"ping","id":{"a":1}}', 'BAD_REQUEST'],
  ['an id that is too long', JSON.stringify({ event: 'ping', id: 'x'.repeat(129) }), 'BAD_REQUEST'],
  ['a refresh without a token', '{"event":"refresh","id":"r1"}', 'BAD_REQUEST', { id: 'r1' }]
]

t.test('every bad frame gets one error frame with its code, and the connection keeps working', async (t) => {
  // More bad frames than the default maxBadFrames (10) allows on one connection.
  const edge = await build(t, { routes: [{ path: '/ws', maxBadFrames: 100, frameRate: false }] })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('order')
  for (const [what, data, code, extra] of BAD_FRAMES) {
    alice.socket.send(data, { binary: Buffer.isBuffer(data) })
    const error = await alice.event('error')
    t.match(error, { event: 'error', code, ...extra }, what)
    t.type(error.message, 'string', `${what}: says why`)
    if (code === 'UNKNOWN_STREAM') {
      // A subscribe or unsubscribe is always acknowledged, here with no stream accepted.
      t.same((await alice.next((f) => f.event.endsWith('subscribed'))).streams, [], `${what}: acknowledged`)
    }
    await stillWorks(t, edge, alice, what)
    t.same(alice.frames, [], `${what}: exactly one error frame`)
  }
  t.same((await alice.subscribe('order')).streams, ['order'], 'still subscribed after all that')
})

t.test('an unknown stream is refused on its own: the rest of the frame is applied', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  alice.send({ event: 'subscribe', streams: ['order', 'nope', 'x'.repeat(1000)], id: 'm' })
  t.match(await alice.event('error'), { code: 'UNKNOWN_STREAM', stream: 'nope', id: 'm' })
  t.equal((await alice.event('error')).stream, 'x'.repeat(64 + 1 + 128), 'a long name is echoed truncated (to a channel name\'s length)')
  t.same(await alice.event('subscribed'), { event: 'subscribed', streams: ['order'], id: 'm', positions: { order: '0-0' } }, 'where order stands: empty')
})

t.test('a stream may be given as {stream, since}', async (t) => {
  const edge = await build(t)
  const alice = await connectUser(t, edge, 'alice')
  t.same((await alice.subscribe({ stream: 'order', since: '1-0' }, { stream: 'promotional' })).streams, ['order', 'promotional'])
})

t.test('a frame over maxPayload closes the socket with 1009', async (t) => {
  const edge = await build(t, { routes: [{ path: '/ws', maxPayload: 1024 }] })
  const alice = await connectUser(t, edge, 'alice')
  alice.send({ event: 'ping', id: 'x'.repeat(2048) })
  t.equal(await alice.closed, 1009)
})
