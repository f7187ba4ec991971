import { once } from 'node:events'
import t from 'tap'
import { exampleProcess, login } from './example-process.js'
import { build, connect, connectUser, handshakeStatus, type Client } from './helpers.js'

function pause (client: Client): void {
  (client.socket as unknown as { _socket: { pause (): void } })._socket.pause()
}

t.test('app.close() sends 1001 on every route, answers new handshakes 503 and ends within drainTimeout + 1 s', async (t) => {
  const drainTimeout = 1000
  const edge = await build(t, { routes: [{ path: '/ws', drainTimeout }, { path: '/public', anonymous: true, drainTimeout }] })
  const alice = await connectUser(t, edge, 'alice')
  const { client: visitor } = await connect(t, `${edge.ws}/public`)
  const { client: deaf } = await connect(t, `${edge.ws}/public`)
  pause(deaf) // never reads the close frame, so never answers it

  const started = Date.now()
  const closing = edge.app.close()
  t.equal(await alice.closed, 1001)
  t.equal(await visitor.closed, 1001)
  t.equal(await handshakeStatus(`${edge.ws}/public`), 503, 'a new handshake during the drain answers 503')
  t.equal(deaf.closeCode, null, 'the deaf client holds the drain open')
  await closing
  const elapsed = Date.now() - started
  t.ok(elapsed >= drainTimeout - 50 && elapsed < drainTimeout + 1000, `closed in ${elapsed} ms`)
  t.equal(edge.app.notifyStreams.get('/public')!.connections.size, 0, 'every connection released')
  deaf.socket.terminate()
})

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`the example app drains on ${signal} and exits within the drain timeout + 1 s`, async (t) => {
    const app = await exampleProcess(t, {})
    const jwt = await login(app.http, 'alice')
    const { client } = await connect(t, `${app.ws}/ws?token=${jwt}`)
    const { client: deaf } = await connect(t, `${app.ws}/public`)
    if (signal === 'SIGTERM') pause(deaf)

    const exited = once(app.child, 'exit')
    // The app logs `closed` once app.close() has resolved; the exit after it is the runtime's.
    const closedLine = new Promise<number>((resolve) => {
      app.child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('"msg":"closed"')) resolve(Date.now()) })
    })
    const started = Date.now()
    app.child.kill(signal)
    t.equal(await client.closed, 1001)
    const elapsed = await closedLine - started
    t.ok(elapsed < 5000 + 1000, `app closed ${elapsed} ms after ${signal} (default drainTimeout: 5000 ms)`)
    const [code] = await exited
    t.equal(code, 0, 'and the process exits cleanly')
    deaf.socket.terminate()
  })
}
