import { once } from 'node:events'
import { connect as tcpConnect } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { build, connect, prng, ticket, token, watchProcessFailures, type Client, type Edge, type Frame } from './helpers.js'

const FRAMES = 10_000
const MESSAGES = 1000
// Users whose ids look like topic separators, wildcards or other users.
const HOSTILE_USERS = ['#', '+', '*', 'a/b', 'alice/#', 'alice/+', 'alice/', '/alice', '..', '%2F', 'ALICE', 'alice ', 'YWxpY2U', 'notify/u/order/YWxpY2U']

function hostileFrames (random: () => number): Array<() => string | Buffer> {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)))
  const wild = ['#', '+', '*', 'order/#', 'order/+', 'order/alice', '../order', 'order\u0000', 'p/promotional', 'notify/p/promotional',
    'notify/u/order/YWxpY2U', 'ORDER', 'order ', '', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'x'.repeat(5000)]
  return [
    () => bytes(1 + Math.floor(random() * 512)),
    () => bytes(1 + Math.floor(random() * 64)).toString('base64'),
    () => '['.repeat(20_000) + ']'.repeat(20_000),
    () => '{"a":'.repeat(6000) + '1' + '}'.repeat(6000),
    () => '{"__proto__":{"event":"subscribe","streams":["order"]},"event":"subscribe","streams":["__proto__"]}',
    () => '{"event":"subscribe","streams":[{"stream":"order","__proto__":{"since":"0-0"}}],"constructor":{"prototype":{"polluted":true}}}',
    () => JSON.stringify({ event: pick(['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'SUBSCRIBE', '']) }),
    () => `{"event":"ping","id":${pick(['1e400', '-1e400', '123456789012345678901234567890', '0.1e-400', 'NaN', '[1]', 'true'])}}`,
    () => `{"event":"subscribe","streams":[${pick(['1e999', '-0', '{}', '[]', 'null', '"order",1e400'])}]}`,
    () => JSON.stringify({ event: pick(['subscribe', 'unsubscribe']), streams: [pick(wild), pick(wild)], id: pick(['x', 1, 'y'.repeat(200)]) }),
    () => JSON.stringify({ event: 'subscribe', streams: [{ stream: pick(['order', 'promotional', '#']), since: pick(['99999999999999999999-0', '-1', 'abc', '0-0', '1-99999999999999999999']) }] }),
    () => JSON.stringify({ event: 'refresh', token: pick(['', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.', 'x'.repeat(10_000), 'a.b.c']) }),
    () => JSON.stringify({ event: 'subscribe', streams: Array.from({ length: 101 }, () => 'order') }),
    () => JSON.stringify({ event: 'subscribe', streams: ['order', 'promotional'] }),
    () => JSON.stringify({ event: 'unsubscribe', streams: ['order', 'promotional'] })
  ]
}

async function connectAs (t: Test, edge: Edge, user: string): Promise<Client> {
  return (await connect(t, `${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, user))}`)).client
}

t.test('10,000 malformed frames crash nothing, leak nothing, and cost another client nothing', async (t) => {
  const failures = watchProcessFailures(t)

  // Our own limits would close the attacker long before 10,000 frames: raise them.
  const generous = { frameRate: { perSecond: 1_000_000, burst: 1_000_000 }, maxBadFrames: 1_000_000 }
  const edge = await build(t, { routes: [{ path: '/ws', ...generous }, { path: '/public', anonymous: true, ...generous }] })

  const alice = await connectAs(t, edge, 'alice')
  await alice.subscribe('reward', 'promotional')
  const hostile = new Map<string, Client>()
  for (const user of HOSTILE_USERS) {
    const client = await connectAs(t, edge, user)
    t.same((await client.subscribe('reward')).streams, ['reward'], `${JSON.stringify(user)} may hold its own private stream`)
    hostile.set(user, client)
  }

  const attacker = new WebSocket(`${edge.ws}/ws?ticket=${await ticket(edge.http, token(edge.app, '#'))}`)
  t.teardown(() => attacker.terminate())
  await once(attacker, 'open')
  const answers = { count: 0, done: false }
  const finished = new Promise<void>((resolve) => attacker.on('message', (data) => {
    answers.count++
    if (data.toString() === '{"event":"pong","id":"done"}') resolve()
  }))

  const random = prng(5)
  const kinds = hostileFrames(random)
  const sending = (async () => {
    for (let i = 0; i < FRAMES; i++) {
      const data = kinds[Math.floor(random() * kinds.length)]()
      attacker.send(data, { binary: Buffer.isBuffer(data) })
      if (i % 200 === 199) await new Promise((resolve) => setImmediate(resolve)) // let the other side run
    }
    // Let go of what the valid frames among them subscribed, so that the topic count below is exact.
    attacker.send('{"event":"unsubscribe","streams":["order","promotional"]}')
    attacker.send('{"event":"ping","id":"done"}')
  })()

  const ids: string[] = []
  for (let i = 0; i < MESSAGES; i++) {
    const res = await edge.app.notify.publish(i % 2 === 0
      ? { stream: 'reward', user: 'alice', data: { i, to: 'alice' } }
      : { stream: 'promotional', data: { i } })
    ids.push((res as { id: string }).id)
  }
  for (const user of HOSTILE_USERS) await edge.app.notify.publish({ stream: 'reward', user, data: { to: user } })
  await sending
  await finished

  await alice.next((f) => f.id === ids[ids.length - 1], 30_000)
  const received = alice.messages()
  t.equal(received.length, MESSAGES - 1, 'alice missed nothing (the last one was taken above)')
  t.same(received.map((m: Frame) => m.data.i), Array.from({ length: MESSAGES - 1 }, (_, i) => i), 'in order')
  t.ok(received.filter((m: Frame) => m.stream === 'reward').every((m: Frame) => m.data.to === 'alice'), 'only her own private messages')

  for (const [user, client] of hostile) {
    const own = await client.next((f) => f.event === 'message' && f.stream === 'reward')
    t.equal(own.data.to, user, `${JSON.stringify(user)} receives its own message`)
    await client.request({ event: 'ping' }, 'pong')
    t.same(client.messages('reward'), [], `${JSON.stringify(user)} receives nobody else's`)
  }

  t.ok(answers.count >= FRAMES * 0.9, `the attacker got ${answers.count} answers and is still served`)
  t.equal(edge.app.notifyBus.topicCount(), 1 + 1 + HOSTILE_USERS.length, 'no topic was made from client text')
  t.same(failures, [], 'no unhandled rejection or exception')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
})

t.test('invalid UTF-8, garbage on the TCP port and broken upgrades do not take the server down', async (t) => {
  const edge = await build(t)
  for (let i = 0; i < 3; i++) {
    const { client } = await connect(t, `${edge.ws}/public`)
    client.socket.send(Buffer.from([0xff, 0xfe, 0xc3, 0x28]), { binary: false })
    t.equal(await client.closed, 1007, 'invalid UTF-8 in a text frame')
  }
  const { port } = new URL(edge.http)
  for (const garbage of [
    Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 37) % 256)),
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    'GET /public HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n'
  ]) {
    const socket = tcpConnect(Number(port), '127.0.0.1')
    socket.on('error', () => {})
    socket.resume()
    socket.end(garbage)
    await once(socket, 'close')
  }
  const { client } = await connect(t, `${edge.ws}/public`)
  t.equal((await client.request({ event: 'ping' }, 'pong')).event, 'pong', 'still serving')
})
