import t from 'tap'
import WebSocket from 'ws'
import { notifyEdgeLoggerOptions } from '../plugins/index.js'
import { API_KEY, build, connect, handshakeStatus, publish, requestTicket, ticket, token, type Client } from './helpers.js'
import { logCapture, type LogLine } from './log-capture.js'
import { until } from './redis-server.js'

// What a client does wrong is logged below error and without a stack: any anonymous client can
// cause it at will, so an error line for it is alert noise and a flood on demand. One case for each
// close code the server sends for a client's fault, and for the HTTP refusals.

const ROUTES = [
  { path: '/ws', maxPayload: 1024 },
  { path: '/public', anonymous: true },
  { path: '/strict', anonymous: true, frameRate: { perSecond: 1, burst: 2 } },
  { path: '/slow', anonymous: true, maxBufferedBytes: 16 * 1024 }
]

type Test = Parameters<Parameters<typeof t.test>[0]>[0]

async function edge (t: Test) {
  const logs = logCapture()
  const built = await build(t, { routes: ROUTES }, { logger: { ...notifyEdgeLoggerOptions(), level: 'trace', stream: logs.stream } })
  /** The lines logged while `cause` ran, once it is done. */
  const during = async (cause: () => Promise<unknown>): Promise<LogLine[]> => {
    const from = logs.lines.length
    await cause()
    return logs.lines.slice(from)
  }
  return { ...built, logs, during }
}

function calm (t: Test, lines: LogLine[], what: string): void {
  t.same(lines.filter((line) => line.level >= 50).map((line) => line.msg), [], `${what}: no line at error or above`)
  t.notOk(lines.some((line) => /"stack":"[^"]/.test(JSON.stringify(line))), `${what}: no stack`)
}

/** Writes raw bytes under the client's WebSocket framing, as a hostile client would. */
function raw (client: Client, bytes: number[]): void {
  (client.socket as unknown as { _socket: { write (data: Buffer): void } })._socket.write(Buffer.from(bytes))
}

t.test('each close code for a client fault comes with no error line and no stack', async (t) => {
  const e = await edge(t)
  const user = async (name: string): Promise<Client> => (await connect(t, `${e.ws}/ws?ticket=${await ticket(e.http, token(e.app, name))}`)).client

  const cases: Array<[string, number, () => Promise<Client>, string | null]> = [
    ['a bad opcode', 1002, async () => { const c = await user('alice'); raw(c, [0x83, 0x80, 0, 0, 0, 0]); return c }, 'WS_ERR_INVALID_OPCODE'],
    ['an unmasked frame', 1002, async () => { const c = await user('alice'); raw(c, [0x81, 0x01, 0x7b]); return c }, 'WS_ERR_EXPECTED_MASK'],
    ['invalid UTF-8', 1007, async () => { const c = await user('alice'); c.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false }); return c }, 'WS_ERR_INVALID_UTF8'],
    ['a frame over maxPayload', 1009, async () => { const c = await user('alice'); c.send('x'.repeat(2048)); return c }, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'],
    ['too many bad frames', 1008, async () => {
      const { client } = await connect(t, `${e.ws}/public`)
      for (let i = 0; i < 10; i++) client.send('not json')
      return client
    }, null],
    ['frame rate abuse', 1008, async () => {
      const { client } = await connect(t, `${e.ws}/strict`)
      for (let i = 0; i < 20; i++) client.send({ event: 'ping' })
      return client
    }, null],
    ['a refresh with another user\'s token', 4003, async () => {
      const c = await user('alice')
      c.send({ event: 'refresh', token: token(e.app, 'mallory') })
      return c
    }, null],
    ['an expired credential', 4001, async () => (await connect(t, `${e.ws}/ws?token=${token(e.app, 'carol', '1s')}`)).client, null],
    ['a client that stops reading', 1013, async () => {
      const { client } = await connect(t, `${e.ws}/slow`)
      await client.request({ event: 'subscribe', streams: ['promotional'] }, 'subscribed')
      ;(client.socket as unknown as { _socket: { pause (): void } })._socket.pause()
      const data = { text: 'x'.repeat(32 * 1024) }
      const route = e.app.notifyStreams.get('/slow')!
      for (let i = 0; i < 2000 && route.stats.slowConsumerCloses === 0; i++) await e.app.notify.publish({ stream: 'promotional', data })
      ;(client.socket as unknown as { _socket: { resume (): void } })._socket.resume()
      return client
    }, null]
  ]
  for (const [what, code, cause, wsCode] of cases) {
    const lines = await e.during(async () => t.equal(await (await cause()).closed, code, `${what}: closed with ${code}`))
    calm(t, lines, what)
    if (wsCode !== null) t.ok(lines.some((line) => line.level === 20 && line.code === wsCode), `${what}: one debug line with ${wsCode}`)
  }
})

t.test('HTTP refusals of a client (bad JSON, bad key, bad credential) log at debug without a stack', async (t) => {
  const e = await edge(t)
  const lines = await e.during(async () => {
    const bad = await fetch(`${e.http}/notifications`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': API_KEY }, body: '{"stream":"promotional","data":{"__proto__":{}}}' })
    t.equal(bad.status, 400)
    t.equal((await publish(e.http, { stream: 'promotional', data: {} }, 'wrong-key-0123456789')).status, 401)
    t.equal((await publish(e.http, { stream: 'nope', data: {} })).status, 400)
    t.equal((await requestTicket(e.http, { authorization: 'Bearer not-a-jwt' })).status, 401)
    t.equal(await handshakeStatus(`${e.ws}/ws?ticket=never-issued-ticket-0123456789`), 401)
  })
  calm(t, lines, 'HTTP')
  for (const code of ['FST_NOTIFY_INVALID_JSON', 'FST_NOTIFY_BAD_API_KEY', 'FST_NOTIFY_UNKNOWN_STREAM', 'FST_NOTIFY_UNAUTHORIZED']) {
    const line = lines.find((l) => (l.err as { code?: string } | undefined)?.code === code)
    t.equal(line?.level, 20, `${code} at debug`)
  }
  // Errors logged at warn keep their level (and lose their stack); at error they stay as they are.
  const err = Object.assign(new Error('bad'), { statusCode: 400 })
  const kept = await e.during(async () => {
    e.app.log.warn({ err }, 'a warning')
    e.app.log.error({ err }, 'an error')
  })
  t.match(kept, [{ level: 40, err: { message: 'bad' } }, { level: 50, err: { stack: /Error: bad/ } }])
  t.notOk((kept[0].err as { stack?: string }).stack, 'the warning has no stack')
})

t.test('a socket error that is not a client protocol violation is still an error', async (t) => {
  const e = await edge(t)
  const socket = new WebSocket(`${e.ws}/public`)
  t.teardown(() => socket.terminate())
  await new Promise((resolve) => socket.once('message', resolve))
  const [server] = e.app.notifyStreams.get('/public')!.connections
  const lines = await e.during(async () => {
    server.socket.emit('error', new Error('deflate failed'))
    await until('the socket to close', () => socket.readyState === WebSocket.CLOSED)
  })
  t.match(lines, [{ level: 50, msg: 'websocket error', err: { message: 'deflate failed' } }])
})
