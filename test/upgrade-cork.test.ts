// The upgrade cork (plugins/streams/upgrade.ts): the route's last preHandler corks a handshake's
// TCP socket so that ws's 101 response and `welcome` leave in one write. These tests walk every
// way a handshake can go once it is corked and check that each ends with the socket uncorked and
// the client answered: accepted, refused by ws, closed by the handler (1013), a HEAD, a handshake
// caught by app.close(), an exception between the 101 and the route's handler. Real Fastify, ws
// and loopback sockets throughout; the tests' own hooks only hold a handshake or look at it.
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest, type RouteOptions } from 'fastify'
import type { WebSocket } from 'ws'
import { notifyEdge, type NotifyEdgeOptions } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { SECRET, connect, token } from './helpers.js'

const PATIENCE = 5000

type Setup = (app: FastifyInstance) => void

interface CorkEdge {
  app: FastifyInstance
  port: number
  ws: string
  /** The TCP socket of every upgrade request that reached the app, in arrival order. */
  upgrades: Socket[]
}

/**
 * An edge on a loopback port whose test hooks are added before the edge registers its routes
 * (instance hooks run before a route's own, so `setup`'s preHandlers run before the cork). Every
 * upgrade request's TCP socket is recorded by an onRequest hook, for `noneCorked`.
 */
async function edge (t: Test, setup: Setup = () => {}, opts: Partial<NotifyEdgeOptions> = {}): Promise<CorkEdge> {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  const upgrades: Socket[] = []
  app.addHook('onRequest', (request, _reply, done) => {
    // app.injectWS() passes a request without a socket.
    const socket = request.raw.socket as Socket | undefined
    if (request.headers.upgrade !== undefined && socket !== undefined) upgrades.push(socket)
    done()
  })
  setup(app)
  await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, ...opts })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { app, port, ws: `ws://127.0.0.1:${port}`, upgrades }
}

/** Every upgrade socket the edge saw is uncorked. */
function noneCorked (t: Test, e: CorkEdge, expected: number): void {
  t.equal(e.upgrades.length, expected, `${expected} upgrade request(s) reached the app`)
  t.same(e.upgrades.map((socket) => socket.writableCorked), e.upgrades.map(() => 0), 'no upgrade socket is left corked')
}

function tcpOf (socket: WebSocket): Socket {
  return (socket as unknown as { _socket: Socket })._socket
}

/** Rejects when `promise` has not settled within `ms`: a hang fails the test instead of stalling it. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Settles once `condition` holds, polling; rejects after PATIENCE ms. */
async function until (condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${PATIENCE} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A promise and its resolve, to hold a hook until the test lets it go. */
function gate (): { promise: Promise<void>, open: () => void } {
  let open!: () => void
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** A hook that holds upgrades until `held` opens; `bothHeld` opens once two are held. */
function holdingTwo (): { held: ReturnType<typeof gate>, bothHeld: ReturnType<typeof gate>, hold: (request: FastifyRequest) => Promise<void> } {
  const held = gate()
  const bothHeld = gate()
  let waiting = 0
  const hold = async (request: FastifyRequest): Promise<void> => {
    if (!request.ws) return
    if (++waiting === 2) bothHeld.open()
    await held.promise
  }
  return { held, bothHeld, hold }
}

interface RawClient {
  socket: Socket
  /** The first chunk the client reads. */
  first: Promise<Buffer>
  /** Everything the client reads until the server ends or closes the connection. */
  all: Promise<Buffer>
}

/** Writes an upgrade request by hand on a plain TCP socket; `headers` replace or drop (null) the defaults. */
function rawUpgrade (t: Test, port: number, url: string, headers: Record<string, string | null> = {}, method = 'GET'): RawClient {
  const fields: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    ...headers
  }
  const socket = tcpConnect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  const lines = Object.entries(fields).filter(([, v]) => v !== null).map(([k, v]) => `${k}: ${v}`)
  socket.write(`${method} ${url} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`)
  const chunks: Buffer[] = []
  const first = new Promise<Buffer>((resolve, reject) => {
    socket.once('data', resolve)
    socket.once('close', () => reject(new Error('closed before any data')))
  })
  first.catch(() => {})
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const all = new Promise<Buffer>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks))))
  return { socket, first, all }
}

/** Splits a read into the HTTP response head and what follows it. */
function splitHead (data: Buffer): { head: string, rest: Buffer } {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) return { head: data.toString('latin1'), rest: Buffer.alloc(0) }
  return { head: data.subarray(0, end).toString('latin1'), rest: data.subarray(end + 4) }
}

/** One unmasked server text frame at the start of `data`, and how many bytes it took. */
function textFrame (data: Buffer): { text: string, length: number } | null {
  if (data.length < 2 || data[0] !== 0x81) return null
  let size = data[1] & 0x7f
  let offset = 2
  if (size === 126) {
    size = data.readUInt16BE(2)
    offset = 4
  } else if (size === 127) {
    return null
  }
  if (data.length < offset + size) return null
  return { text: data.subarray(offset, offset + size).toString('utf8'), length: offset + size }
}

/** `ss`'s data_segs_out for the server side of a loopback connection, or null where `ss` cannot say. */
function dataSegmentsOut (serverPort: number, clientPort: number): number | null {
  try {
    const out = execFileSync('ss', ['-tinH', 'state', 'established', 'sport', `= :${serverPort}`, 'dport', `= :${clientPort}`], { encoding: 'utf8' })
    const match = /data_segs_out:(\d+)/.exec(out)
    return match === null ? null : Number(match[1])
  } catch {
    return null
  }
}

t.test('a handshake sends the 101 and welcome in one write, in that order, and leaves the socket uncorked', async (t) => {
  // What ws has written when it hands over the socket, before the route's handler runs.
  const atHandover: Array<{ corked: number, pending: number }> = []
  const e = await edge(t)
  e.app.websocketServer.on('connection', (socket: WebSocket) => {
    atHandover.push({ corked: tcpOf(socket).writableCorked, pending: tcpOf(socket).writableLength })
  })
  const jwt = token(e.app, 'alice')
  const raw = rawUpgrade(t, e.port, `/ws?token=${jwt}`)
  const first = await within(raw.first, PATIENCE, 'the handshake response')

  const { head, rest } = splitHead(first)
  t.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/, 'the 101 comes first')
  const welcome = textFrame(rest)
  t.ok(welcome, 'the first read holds a complete text frame after the 101 headers')
  t.equal(welcome?.length, rest.length, 'and nothing else')
  t.match(JSON.parse(welcome?.text ?? '{}'), { event: 'welcome', user: 'alice' }, 'the frame is welcome')

  t.same(atHandover, [{ corked: 1, pending: head.length + 4 }], 'ws wrote the 101 into the cork: it waited there for welcome')
  const segments = dataSegmentsOut(e.port, raw.socket.localPort!)
  if (segments === null) t.comment('ss cannot report data_segs_out here: the segment count is not checked')
  else t.equal(segments, 1, 'the server sent one TCP segment with data (ss data_segs_out)')

  const [connection] = e.app.notifyStreams.get('/ws')!.connections
  t.equal(tcpOf(connection.socket).writableCorked, 0, 'the server-side socket is uncorked after the handshake')
  noneCorked(t, e, 1)
})

t.test('many handshakes at once, over real ws clients: welcome first on each, no socket left corked', async (t) => {
  const e = await edge(t)
  const clients = await within(Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const { client, welcome } = await connect(t, `${e.ws}/ws?token=${token(e.app, `user${i % 5}`)}`)
    t.equal(welcome.user, `user${i % 5}`)
    return client
  })), PATIENCE, '20 handshakes')
  for (const client of clients) t.same(client.frames, [], 'welcome was the first frame')
  const connections = [...e.app.notifyStreams.get('/ws')!.connections]
  t.equal(connections.length, 20)
  t.same(connections.map((c) => tcpOf(c.socket).writableCorked), connections.map(() => 0), 'every server-side socket is uncorked')
  // The socket still carries traffic both ways after the handshake.
  t.match(await clients[0].subscribe('promotional'), { event: 'subscribed' })
  noneCorked(t, e, 20)
})

t.test('a handshake ws refuses after the cork is answered 400 at once and closed', async (t) => {
  const e = await edge(t)
  const cases: Array<{ name: string, headers: Record<string, string | null>, body: RegExp }> = [
    { name: 'a malformed Sec-WebSocket-Key', headers: { 'Sec-WebSocket-Key': 'not-a-key' }, body: /Sec-WebSocket-Key/ },
    { name: 'no Sec-WebSocket-Key', headers: { 'Sec-WebSocket-Key': null }, body: /Sec-WebSocket-Key/ },
    { name: 'an unsupported Sec-WebSocket-Version', headers: { 'Sec-WebSocket-Version': '12' }, body: /Sec-WebSocket-Version/ },
    { name: 'an Upgrade to another protocol', headers: { Upgrade: 'h2c' }, body: /Upgrade header/ }
  ]
  for (const c of cases) {
    // Authenticated: the request passes every hook, the cork included, and reaches ws.
    const raw = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'alice')}`, c.headers)
    const answer = await within(raw.all, PATIENCE, `${c.name}: the answer and the close`)
    const { head, rest } = splitHead(answer)
    t.match(head, /^HTTP\/1\.1 400 Bad Request\r\n/, `${c.name}: 400`)
    t.match(rest.toString(), c.body, `${c.name}: ws's reason`)
  }
  t.equal(e.app.notifyStreams.get('/ws')!.connections.size, 0, 'no connection opened')
  noneCorked(t, e, cases.length)
})

t.test('a handshake refused by its hooks (401) never reaches the cork and is answered', async (t) => {
  const e = await edge(t)
  const raw = rawUpgrade(t, e.port, '/ws?token=not-a-jwt')
  const { head } = splitHead(await within(raw.all, PATIENCE, 'the 401 and the close'))
  t.match(head, /^HTTP\/1\.1 401 /)
  noneCorked(t, e, 1)
})

t.test('a HEAD upgrade of the route is answered 404 and closed, not held in the cork', async (t) => {
  // Fastify adds a HEAD route for the GET, with the same hooks, the cork included (request.ws is
  // true); @fastify/websocket answers it 404 through the upgrade socket and destroys the socket
  // once the response has finished. The response's end() uncorks the socket fully (Node's
  // OutgoingMessage), so this never waited on the cork, but it goes through it.
  const e = await edge(t)
  const raw = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'alice')}`, {}, 'HEAD')
  const { head } = splitHead(await within(raw.all, PATIENCE, 'the 404 and the close'))
  t.match(head, /^HTTP\/1\.1 404 /)
  noneCorked(t, e, 1)
})

t.test('a plain GET of the route is not corked', async (t) => {
  const corked: number[] = []
  const e = await edge(t, (app) => {
    app.addHook('onSend', (request, _reply, payload, done) => {
      if (request.url.startsWith('/ws?')) corked.push(request.raw.socket.writableCorked)
      done(null, payload)
    })
  })
  const url = `http://127.0.0.1:${e.port}/ws?token=${token(e.app, 'alice')}`
  t.equal((await fetch(url, { signal: AbortSignal.timeout(PATIENCE) })).status, 404)
  t.equal((await fetch(url, { signal: AbortSignal.timeout(PATIENCE) })).status, 404, 'and again on the same keep-alive connection')
  t.same(corked, [0, 0], 'the socket was not corked while the 404 was sent')
  noneCorked(t, e, 0)
})

t.test('two handshakes of one user over maxConnectionsPerUser: the handler closes the later with 1013, uncorked', async (t) => {
  // Both are held after the per-user check and before the cork, so both pass the check and the
  // handler has to refuse the later one itself.
  const { held, bothHeld, hold } = holdingTwo()
  const e = await edge(t, (app) => {
    app.addHook('preHandler', hold)
  }, { routes: [{ path: '/ws', maxConnectionsPerUser: 1 }] })
  const jwt = token(e.app, 'alice')
  const opening = [connect(t, `${e.ws}/ws?token=${jwt}`), connect(t, `${e.ws}/ws?token=${jwt}`)]
  const closes = opening.map(async (o) => (await o).client.closed)
  await within(bothHeld.promise, PATIENCE, 'both handshakes past the per-user check')
  held.open()
  const opened = await within(Promise.all(opening), PATIENCE, 'both handshakes')
  t.same(opened.map((o) => o.welcome.event), ['welcome', 'welcome'], 'each got its 101 and welcome')
  const refused = await within(Promise.race(closes), PATIENCE, 'the later handshake\'s close')
  t.equal(refused, 1013, 'one is closed with 1013')
  const route = e.app.notifyStreams.get('/ws')!
  await until(() => route.connections.size === 1, 'the refused connection released')
  const [stays] = route.connections
  t.equal(stays.socket.readyState, stays.socket.OPEN, 'the other stays open')
  t.equal(tcpOf(stays.socket).writableCorked, 0)
  noneCorked(t, e, 2)
  await within(e.app.close(), PATIENCE, 'app.close()')
})

t.test('app.close() while a handshake waits in a hook before the cork: answered 503, close completes', async (t) => {
  const held = gate()
  const arrived = gate()
  const e = await edge(t, (app) => {
    app.addHook('preHandler', async (request: FastifyRequest) => {
      if (!request.ws) return
      arrived.open()
      await held.promise
    })
  })
  const raw = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'alice')}`)
  await within(arrived.promise, PATIENCE, 'the handshake in its hook')
  const wsClosed = once(e.app.websocketServer, 'close')
  const closing = e.app.close()
  await within(wsClosed, PATIENCE, 'the WebSocket server closing')
  held.open()
  const { head } = splitHead(await within(raw.all, PATIENCE, 'the answer and the close'))
  t.match(head, /^HTTP\/1\.1 503 /, 'ws refuses a handshake on a closing server')
  await within(closing, PATIENCE, 'app.close()')
  noneCorked(t, e, 1)
})

t.test('a handshake held after the cork by a later hook is not corked while it waits, and app.close() completes', async (t) => {
  // Another preHandler appended after the route's own (as an onRoute hook can) makes the handler
  // asynchronous: the cork must not outlive the hook that set it.
  const held = gate()
  const arrived = gate()
  const e = await edge(t, (app) => {
    app.addHook('onRoute', (route: RouteOptions) => {
      if (route.url !== '/ws') return
      const own = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]
      route.preHandler = [...own, async (request: FastifyRequest) => {
        if (!request.ws) return
        arrived.open()
        await held.promise
      }]
    })
  })
  const raw = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'alice')}`)
  await within(arrived.promise, PATIENCE, 'the handshake in the later hook')
  t.equal(e.upgrades[0].writableCorked, 0, 'uncorked while it waits')
  const wsClosed = once(e.app.websocketServer, 'close')
  const closing = e.app.close()
  await within(wsClosed, PATIENCE, 'the WebSocket server closing')
  held.open()
  const { head } = splitHead(await within(raw.all, PATIENCE, 'the answer and the close'))
  t.match(head, /^HTTP\/1\.1 503 /)
  await within(closing, PATIENCE, 'app.close()')
  noneCorked(t, e, 1)
})

t.test('a later hook holding the handshake: a client gone meanwhile, and one that stays, both end', async (t) => {
  const { held, bothHeld, hold } = holdingTwo()
  const e = await edge(t, (app) => {
    app.addHook('onRoute', (route: RouteOptions) => {
      if (route.url !== '/ws') return
      const own = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]
      route.preHandler = [...own, hold]
    })
  })
  const gone = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'alice')}`)
  const stays = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'bob')}`)
  await within(bothHeld.promise, PATIENCE, 'both handshakes in the later hook')
  gone.socket.destroy()
  await once(gone.socket, 'close')
  held.open()
  const { head, rest } = splitHead(await within(stays.first, PATIENCE, 'the 101'))
  t.match(head, /^HTTP\/1\.1 101 /)
  t.ok(rest.length === 0 || JSON.parse(textFrame(rest)?.text ?? '{}').event === 'welcome', 'then welcome (in the same read or the next)')
  // The server cannot know the other client left until it writes to it: its connection opens, then goes.
  const route = e.app.notifyStreams.get('/ws')!
  await until(() => [...route.connections].map((c) => c.principal.user).join() === 'bob', 'only bob\'s connection left')
  noneCorked(t, e, 2)
  // A raw client does not answer the drain's close frame; ending it lets app.close() finish at once.
  stays.socket.end()
  await within(e.app.close(), PATIENCE, 'app.close()')
})

t.test('an exception between ws\'s 101 and the route\'s handler: the client gets its 101, then the socket is terminated', async (t) => {
  // A 'connection' listener on the WebSocket server runs after ws wrote the 101 into the cork and
  // before @fastify/websocket calls the route's handler; one that throws skips the handler.
  const e = await edge(t)
  let thrown = false
  e.app.websocketServer.on('connection', (socket: WebSocket) => {
    // The socket the throw orphans gets no 'error' listener from @fastify/websocket.
    socket.on('error', () => {})
    if (thrown) return
    thrown = true
    throw new Error('a connection listener that throws')
  })
  const raw = rawUpgrade(t, e.port, `/ws?token=${token(e.app, 'alice')}`)
  const { head, rest } = splitHead(await within(raw.first, PATIENCE, 'the 101'))
  t.match(head, /^HTTP\/1\.1 101 /, 'the 101 left the cork')
  t.equal(rest.length, 0, 'no welcome: the handler did not run')
  t.equal(e.app.notifyStreams.get('/ws')!.connections.size, 0)
  // Neither the route nor ws (clientTracking: false) knows that socket: left open, it would hold
  // app.close() for as long as the client stays. The server ends it; the client does nothing.
  await within(raw.all, PATIENCE, 'the server to end the orphaned socket')
  // The next handshake is not affected.
  const { welcome } = await connect(t, `${e.ws}/ws?token=${token(e.app, 'bob')}`)
  t.equal(welcome.user, 'bob')
  noneCorked(t, e, 2)
  await within(e.app.close(), PATIENCE, 'app.close()')
})

t.test('app.injectWS(), whose request has no TCP socket, is left alone: welcome arrives', async (t) => {
  const e = await edge(t)
  const frames: string[] = []
  const socket = await within(e.app.injectWS(`/ws?token=${token(e.app, 'alice')}`, {}, {
    onInit: (ws) => { ws.on('message', (data) => frames.push(data.toString())) }
  }), PATIENCE, 'injectWS')
  t.teardown(() => socket.terminate())
  await until(() => frames.length > 0, 'welcome')
  t.match(JSON.parse(frames[0]), { event: 'welcome', user: 'alice' })
  t.equal(e.app.notifyStreams.get('/ws')!.connections.size, 1)
  noneCorked(t, e, 0)
})
