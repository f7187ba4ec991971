import { createHmac, sign, type KeyObject } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import mqemitter, { type MQEmitter } from 'mqemitter'
import WebSocket from 'ws'
import { notifyEdge, type NotifyEdgeOptions } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'

export const SECRET = 'a-test-secret-that-is-long-enough-for-hs256'
export const API_KEY = 'test-api-key-0123456789'

type Test = { teardown: (fn: () => unknown) => void }

export interface Edge { app: FastifyInstance, http: string, ws: string }

/** Builds an edge on a real loopback port; closed when the test ends. */
export async function build (
  t: Test,
  opts: Partial<NotifyEdgeOptions> = {},
  server: FastifyServerOptions = { logger: false }
): Promise<Edge> {
  const app = Fastify(server)
  t.teardown(() => app.close())
  await app.register(notifyEdge, {
    jwt: { secret: SECRET },
    streams: STREAMS,
    publishApi: { apiKey: API_KEY },
    ...opts
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, ...urls(app) }
}

/** The error that registering the edge with `opts` fails with, or null when it does not fail. */
export async function registrationError (opts: Record<string, unknown>): Promise<(Error & { code?: string }) | null> {
  const app = Fastify({ logger: false })
  try {
    await app.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, ...opts } as NotifyEdgeOptions)
    await app.ready()
    return null
  } catch (err) {
    return err as Error
  } finally {
    await app.close()
  }
}

export function urls (app: FastifyInstance): { http: string, ws: string } {
  const { port } = app.server.address() as AddressInfo
  return { http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` }
}

/** A JWT for `sub`, valid for `expiresIn` (@fastify/jwt syntax: a number of seconds, or '2s', '1h'). */
export function token (app: FastifyInstance, sub: string, expiresIn: number | string = '1h'): string {
  return app.jwt.sign({ sub }, { expiresIn })
}

export async function ticket (http: string, jwt: string): Promise<string> {
  const res = await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } })
  if (res.status !== 200) throw new Error(`ticket: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { ticket: string }).ticket
}

export async function publish (http: string, body: unknown, key = API_KEY): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`${http}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

export type Frame = Record<string, any>

/** A real `ws` client that queues every frame it receives, to be awaited in order. */
export class Client {
  readonly frames: Frame[] = []
  readonly #waiters: Array<() => void> = []
  closeCode: number | null = null
  readonly closed: Promise<number>

  constructor (readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()))
      for (const wake of this.#waiters.splice(0)) wake()
    })
    this.closed = new Promise((resolve) => socket.once('close', (code) => {
      this.closeCode = code
      for (const wake of this.#waiters.splice(0)) wake()
      resolve(code)
    }))
  }

  send (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** Removes and returns the first queued frame matching `match`, waiting up to `timeout` ms for it. */
  async next (match: (frame: Frame) => boolean = () => true, timeout = 3000): Promise<Frame> {
    const deadline = Date.now() + timeout
    for (;;) {
      const index = this.frames.findIndex(match)
      if (index >= 0) return this.frames.splice(index, 1)[0]
      if (this.closeCode !== null) throw new Error(`socket closed (${this.closeCode}) before the frame arrived`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no matching frame within ${timeout} ms; have ${JSON.stringify(this.frames)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  event (event: string, timeout?: number): Promise<Frame> {
    return this.next((frame) => frame.event === event, timeout)
  }

  /** Sends a frame with a correlation id and waits for the answer carrying it. */
  async request (frame: Frame, event: string): Promise<Frame> {
    const id = `r${Math.random().toString(36).slice(2)}`
    this.send({ ...frame, id })
    return this.next((f) => f.event === event && f.id === id)
  }

  async subscribe (...streams: Array<string | { stream: string, since?: string }>): Promise<Frame> {
    return this.request({ event: 'subscribe', streams }, 'subscribed')
  }

  /** Messages received so far on a stream, taken from the queue. */
  messages (stream?: string): Frame[] {
    const taken: Frame[] = []
    for (let i = this.frames.length - 1; i >= 0; i--) {
      const f = this.frames[i]
      if (f.event === 'message' && (stream === undefined || f.stream === stream)) taken.unshift(...this.frames.splice(i, 1))
    }
    return taken
  }

  close (): Promise<number> {
    if (this.closeCode === null) this.socket.close()
    return this.closed
  }
}

/** Opens a socket and waits for `welcome`; the client is closed when the test ends. */
export async function connect (t: Test, url: string, options: WebSocket.ClientOptions = {}): Promise<{ client: Client, welcome: Frame }> {
  const socket = new WebSocket(url, options)
  const client = new Client(socket)
  t.teardown(() => client.close())
  await once(socket, 'open')
  return { client, welcome: await client.event('welcome') }
}

/** Connects with a fresh ticket for `user`. */
export async function connectUser (t: Test, edge: Edge, user: string): Promise<Client> {
  const t1 = await ticket(edge.http, token(edge.app, user))
  return (await connect(t, `${edge.ws}/ws?ticket=${t1}`)).client
}

/** How a handshake ended: 101 when accepted, else the refusal's status and JSON body. */
export function handshake (url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number, body: Record<string, any> | null }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, options)
    socket.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.once('end', () => {
        socket.terminate()
        const text = Buffer.concat(chunks).toString()
        resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : null })
      })
    })
    socket.once('open', () => { resolve({ status: 101, body: null }); socket.close() })
    socket.once('error', reject)
  })
}

/** The HTTP status a handshake is refused with, or 101 when it is accepted. */
export async function handshakeStatus (url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  return (await handshake(url, options)).status
}

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256' | 'none'

/**
 * Signs a JWT by hand, so a test can choose any algorithm and key (`none` and key-confusion
 * tokens included), whatever the app under test was configured with.
 */
export function signJwt (payload: Record<string, unknown>, alg: JwtAlgorithm, key: KeyObject | string = SECRET): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${part({ alg, typ: 'JWT' })}.${part(payload)}`
  let signature = ''
  if (alg === 'HS256') signature = createHmac('sha256', key).update(input).digest('base64url')
  if (alg === 'RS256') signature = sign('sha256', Buffer.from(input), key as KeyObject).toString('base64url')
  if (alg === 'ES256') {
    signature = sign('sha256', Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' }).toString('base64url')
  }
  return `${input}.${signature}`
}

/** Claims for `sub` that expire `seconds` from now (negative: already expired). */
export function claims (sub: unknown, seconds = 3600): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000)
  return { sub, iat: now, exp: now + seconds }
}

/** POST /ws/ticket with `headers`; the status and parsed body. */
export async function requestTicket (http: string, headers: Record<string, string>): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${http}/ws/ticket`, { method: 'POST', headers })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

/** Collects unhandled rejections and uncaught exceptions while the test runs (a crash would otherwise end the file). */
export function watchProcessFailures (t: Test): unknown[] {
  const failures: unknown[] = []
  const onFailure = (err: unknown): void => { failures.push(err) }
  process.on('unhandledRejection', onFailure)
  process.on('uncaughtException', onFailure)
  t.teardown(() => {
    process.off('unhandledRejection', onFailure)
    process.off('uncaughtException', onFailure)
  })
  return failures
}

/** A real mqemitter that counts the listeners added to and removed from it: every `on` needs its `off`. */
export function countingEmitter (): { emitter: MQEmitter, added: () => number, removed: () => number } {
  const emitter = mqemitter()
  let added = 0
  let removed = 0
  const on = emitter.on.bind(emitter)
  const off = emitter.removeListener.bind(emitter)
  emitter.on = (topic, listener, callback) => { added++; return on(topic, listener, callback) }
  emitter.removeListener = (topic, listener, callback) => { removed++; return off(topic, listener, callback) }
  return { emitter, added: () => added, removed: () => removed }
}

/** Deterministic randomness, so a failure can be replayed. */
export function prng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Counts what the server's TCP socket of `app`'s first open connection on `path` hands to the
 * kernel: one `_write` or `_writev` per batch. Read the count with the returned function.
 */
export function countTcpWrites (app: FastifyInstance, path = '/ws'): () => number {
  const [connection] = app.notifyStreams.get(path)!.connections
  const tcp = (connection.socket as unknown as { _socket: Record<'_write' | '_writev', (...args: unknown[]) => void> })._socket
  let writes = 0
  for (const name of ['_write', '_writev'] as const) {
    const original = tcp[name].bind(tcp)
    tcp[name] = (...args) => { writes++; original(...args) }
  }
  return () => writes
}
