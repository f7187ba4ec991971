import http from 'node:http'
import WebSocket, { type RawData } from 'ws'
import { serve } from './lib/ipc.js'
import { nowUs, signToken, userName } from './lib/shared.js'
import { pool, Samples, round } from './lib/stats.js'
import { chatClients } from './chat/clients.js'
import { scaleClients } from './scale/clients.js'

// The load generator: one process holding every client socket, apart from the servers.
// `notify` clients speak this project's protocol (edge and plain ws contenders); `sio` clients
// speak Socket.IO's wire protocol (Engine.IO 4 over WebSocket) with the same `ws` library, so
// every contender is measured against the same client code.

type Protocol = 'notify' | 'sio'

interface Target {
  port: number
  protocol: Protocol
  stream: string
}

interface Received { seq: number, t: number }

const CONNECT_TIMEOUT_MS = 30_000
const NOTIFY_MESSAGE = '{"event":"message"'

class BenchClient {
  received = 0
  lastSeq = -1
  constructor (readonly ws: WebSocket) {}
}

const clients: BenchClient[] = []
const samples = new Samples()
let received = 0
let orderErrors = 0
let firstPublished = Infinity
let lastReceived = 0
let armedCpu = process.cpuUsage()
let armedAt = nowUs()
let onProgress: (() => void) | null = null

function record (client: BenchClient, data: Received): void {
  const now = nowUs()
  samples.add(now - data.t)
  received++
  if (data.seq <= client.lastSeq) orderErrors++
  client.lastSeq = data.seq
  client.received++
  if (data.t < firstPublished) firstPublished = data.t
  lastReceived = now
  onProgress?.()
}

/** Opens one client and resolves once it is subscribed to `target.stream`. */
function open (target: Target, auth: { token: string } | { ticket: string }, localAddress?: string): Promise<BenchClient> {
  const { port, protocol, stream } = target
  const query = 'ticket' in auth ? `ticket=${auth.ticket}` : `token=${auth.token}`
  const url = protocol === 'notify'
    ? `ws://127.0.0.1:${port}/ws?${query}`
    : `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`
  const ws = new WebSocket(url, { localAddress, perMessageDeflate: false })
  const client = new BenchClient(ws)
  return new Promise((resolve, reject) => {
    let subscribed = false
    const fail = (err: Error): void => {
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    const ready = (): void => {
      subscribed = true
      clearTimeout(timer)
      resolve(client)
    }
    const timer = setTimeout(() => fail(new Error('no subscription within 30 s')), CONNECT_TIMEOUT_MS)
    ws.once('unexpected-response', (_req, res) => fail(new Error(`handshake answered ${res.statusCode}`)))
    ws.once('error', (err) => { if (!subscribed) fail(err) })
    ws.once('close', () => { if (!subscribed) fail(new Error('closed before subscribing')) })
    if (protocol === 'notify') {
      ws.once('open', () => ws.send(JSON.stringify({ event: 'subscribe', streams: [stream], id: 's' })))
      ws.on('message', (data: RawData) => {
        const text = data.toString()
        if (text.startsWith(NOTIFY_MESSAGE)) return record(client, JSON.parse(text).data)
        const frame = JSON.parse(text)
        if (frame.event === 'subscribed') ready()
        else if (frame.event === 'error') fail(new Error(`${frame.code}: ${frame.message}`))
      })
    } else {
      ws.on('message', (data: RawData) => {
        const text = data.toString()
        if (text.startsWith('42')) return record(client, JSON.parse(text.slice(2))[1].data)
        if (text === '2') ws.send('3')
        else if (text.startsWith('0')) ws.send(`40${JSON.stringify(auth)}`)
        else if (text.startsWith('40')) ws.send(`420${JSON.stringify(['subscribe', [stream]])}`)
        else if (text.startsWith('430')) ready()
        else if (text.startsWith('44')) fail(new Error(`connect error ${text.slice(2)}`))
      })
    }
  })
}

function postTicket (port: number, token: string, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/ws/ticket', agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => res.statusCode === 200 ? resolve(JSON.parse(body).ticket) : reject(new Error(`ticket answered ${res.statusCode}`)))
    })
    req.on('error', reject)
    req.end()
  })
}

function localAddress (index: number, addresses: number): string | undefined {
  return addresses > 1 ? `127.0.0.${1 + (index % addresses)}` : undefined
}

serve({
  /** Opens `count` clients, user i authenticated by a JWT in the query, each subscribed to `stream`. */
  connect: async ({ count, concurrency, addresses, ...target }: Target & { count: number, concurrency: number, addresses: number }) => {
    const start = nowUs()
    const first = clients.length
    await pool(count, concurrency, async (i) => {
      clients.push(await open(target, { token: signToken(userName(first + i)) }, localAddress(i, addresses)))
    })
    return { connected: count, ms: round((nowUs() - start) / 1000) }
  },

  /** Starts counting deliveries from zero. */
  arm: () => {
    samples.reset()
    received = 0
    orderErrors = 0
    firstPublished = Infinity
    lastReceived = 0
    for (const client of clients) {
      client.received = 0
      client.lastSeq = -1
    }
    armedCpu = process.cpuUsage()
    armedAt = nowUs()
  },

  /** Resolves when `expected` deliveries arrived, or when none arrived for `idleMs`. */
  wait: async ({ expected, perClient, idleMs }: { expected: number, perClient: number, idleMs: number }) => {
    await new Promise<void>((resolve) => {
      let seen = received
      const done = (): void => {
        clearTimeout(timer)
        onProgress = null
        resolve()
      }
      const check = (): void => {
        if (received >= expected || received === seen) return done()
        seen = received
        timer = setTimeout(check, idleMs)
      }
      let timer = setTimeout(check, idleMs)
      onProgress = () => { if (received >= expected) done() }
      if (received >= expected) done()
    })
    const cpu = process.cpuUsage(armedCpu)
    const wall = nowUs() - armedAt
    return {
      received,
      expected,
      orderErrors,
      short: perClient > 0 ? clients.filter((c) => c.received !== perClient).length : 0,
      spanMs: round((lastReceived - firstPublished) / 1000, 3),
      latency: samples.summary(),
      clientCpuPercent: round(100 * (cpu.user + cpu.system) / wall, 1)
    }
  },

  /** `count` times: ticket over HTTP, handshake with it, subscribe; `concurrency` at once. */
  handshakes: async ({ count, concurrency, ...target }: Target & { count: number, concurrency: number }) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
    const tokens = Array.from({ length: count }, (_, i) => signToken(userName(clients.length + i)))
    const latencies = new Samples()
    let failures = 0
    let firstError: string | null = null
    const start = nowUs()
    await pool(count, concurrency, async (i) => {
      const begin = nowUs()
      try {
        const ticket = await postTicket(target.port, tokens[i], agent)
        clients.push(await open(target, { ticket }))
        latencies.add(nowUs() - begin)
      } catch (err) {
        failures++
        firstError ??= (err as Error).message
      }
    })
    const seconds = (nowUs() - start) / 1e6
    agent.destroy()
    return { completed: latencies.count, failures, firstError, perSecond: round(latencies.count / seconds, 0), latency: latencies.summary() }
  },

  /** Closes every client and waits for the sockets to close. */
  disconnect: async () => {
    const closing = clients.splice(0).map((client) => new Promise((resolve) => {
      if (client.ws.readyState === WebSocket.CLOSED) return resolve(null)
      client.ws.once('close', resolve)
      client.ws.terminate()
    }))
    await Promise.all(closing)
    return { closed: closing.length }
  },

  close: () => { setImmediate(() => process.exit(0)) },
  // The scale scenario's clients (bench/scale/clients.ts): two streams each, reconnect and resume.
  ...scaleClients,
  // The chat scenario's room members (bench/chat/clients.ts): each publishes to its room once a second.
  ...chatClients
}, { pid: process.pid })
