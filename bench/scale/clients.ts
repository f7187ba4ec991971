import WebSocket, { type RawData } from 'ws'
import { backoffDelay } from '../../client/backoff.js'
import { isNewer } from '../../client/message-id.js'
import type { Handlers } from '../lib/ipc.js'
import { nowUs, signToken, userName } from '../lib/shared.js'
import { pool, Samples, round } from '../lib/stats.js'
import { roomName, SCALE_PRIVATE } from './streams.js'

// The scale scenario's clients, run inside the load generator: each is one user, subscribed to its
// private stream and one public room. A socket that closes reconnects as the SDK does (its backoff,
// `since` the last id of each stream) to another instance, chosen at random. Deliveries are counted
// per sequence number, so that the storm can tell what never arrived.

const BACKOFF = { min: 500, max: 20_000 }
const CONNECT_TIMEOUT_MS = 60_000

interface ScaleClient {
  index: number
  port: number
  ws: WebSocket | null
  open: boolean
  attempt: number
  lastPrivate: string | undefined
  lastRoom: string | undefined
}

const clients: ScaleClient[] = []
let ports: number[] = []
let addresses = 1
let stopping = false
const samples = new Samples()
// seen[seq] counts the private deliveries of message seq (tracking is armed for a range of seqs).
let seen = new Uint8Array(0)
let seqBase = 0
let received = 0
let duplicates = 0
let gaps = 0
let lastReceivedUs = 0
// Successful (re)subscribes per wall-clock second (driver clock: nowUs), for the storm's peak rate.
const handshakesPerSecond = new Map<number, number>()
let reconnects = 0
// Handshakes an instance answered with an HTTP error (work refused), not a refused TCP connect.
let refused = 0

function deliver (client: ScaleClient, stream: string, id: string, data: { seq: number, t: number }): void {
  const isPrivate = stream === SCALE_PRIVATE
  const last = isPrivate ? client.lastPrivate : client.lastRoom
  if (!isNewer(id, last)) {
    duplicates++
    return
  }
  if (isPrivate) client.lastPrivate = id
  else client.lastRoom = id
  const now = nowUs()
  samples.add(now - data.t)
  received++
  lastReceivedUs = now
  const slot = data.seq - seqBase
  if (isPrivate && slot >= 0 && slot < seen.length && seen[slot] < 255) seen[slot]++
}

/** Connects `client` and resolves once both its streams are subscribed (rejects on failure). */
function connect (client: ScaleClient): Promise<void> {
  const user = userName(client.index)
  const localAddress = addresses > 1 ? `127.0.0.${1 + (client.index % addresses)}` : undefined
  const ws = new WebSocket(`ws://127.0.0.1:${client.port}/ws?token=${signToken(user)}`, { localAddress, perMessageDeflate: false })
  client.ws = ws
  const streams = [
    client.lastPrivate === undefined ? SCALE_PRIVATE : { stream: SCALE_PRIVATE, since: client.lastPrivate },
    client.lastRoom === undefined ? roomName(client.index) : { stream: roomName(client.index), since: client.lastRoom }
  ]
  return new Promise((resolve, reject) => {
    let settled = false
    const fail = (err: Error): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    const timer = setTimeout(() => fail(new Error('no subscription within 60 s')), CONNECT_TIMEOUT_MS)
    ws.once('unexpected-response', (_req, res) => {
      refused++
      fail(new Error(`handshake answered ${res.statusCode}`))
    })
    ws.once('error', fail)
    ws.once('close', () => {
      client.open = false
      if (!settled) fail(new Error('closed before subscribing'))
      else if (!stopping) reconnect(client)
    })
    ws.once('open', () => ws.send(JSON.stringify({ event: 'subscribe', streams, id: 's' })))
    ws.on('message', (raw: RawData) => {
      const frame = JSON.parse(raw.toString())
      if (frame.event === 'message') return deliver(client, frame.stream, frame.id, frame.data)
      if (frame.event === 'subscribed' && !settled) {
        settled = true
        clearTimeout(timer)
        client.open = true
        client.attempt = 0
        gaps += frame.gaps?.length ?? 0
        resolve()
      } else if (frame.event === 'gap') {
        gaps += frame.streams.length
      } else if (frame.event === 'error') {
        fail(new Error(`${frame.code}: ${frame.message}`))
      }
    })
  })
}

/** After a drop: the SDK's backoff, then another instance, until subscribed again. */
function reconnect (client: ScaleClient): void {
  const delay = backoffDelay(client.attempt++, BACKOFF)
  setTimeout(() => {
    if (stopping) return
    const others = ports.filter((port) => port !== client.port)
    client.port = others[Math.floor(Math.random() * others.length)] ?? client.port
    connect(client).then(() => {
      reconnects++
      const second = Math.floor(nowUs() / 1e6)
      handshakesPerSecond.set(second, (handshakesPerSecond.get(second) ?? 0) + 1)
    }, () => { if (!stopping) reconnect(client) })
  }, delay).unref()
}

export const scaleClients: Handlers = {
  /** Opens users first … first+count-1, user i on ports[i % ports.length]. */
  'scale-connect': async (args: { ports: number[], first: number, count: number, concurrency: number, addresses: number }) => {
    ports = args.ports
    addresses = args.addresses
    stopping = false
    const start = nowUs()
    await pool(args.count, args.concurrency, async (i) => {
      const index = args.first + i
      const client: ScaleClient = { index, port: ports[index % ports.length], ws: null, open: false, attempt: 0, lastPrivate: undefined, lastRoom: undefined }
      await connect(client)
      clients.push(client)
    })
    return { connected: args.count, ms: round((nowUs() - start) / 1000) }
  },

  /** Counts from zero; private seqs firstSeq … firstSeq+count-1 are tracked one by one. */
  'scale-arm': ({ firstSeq = 0, count = 0 }: { firstSeq?: number, count?: number }) => {
    samples.reset()
    received = 0
    duplicates = 0
    gaps = 0
    lastReceivedUs = 0
    reconnects = 0
    refused = 0
    handshakesPerSecond.clear()
    seqBase = firstSeq
    seen = new Uint8Array(count)
  },

  /** Where the clients are; with `detail`, every latency sample (µs) and the private seqs seen since `scale-arm`. */
  'scale-status': ({ detail: withSamples = false }: { detail?: boolean }) => {
    return {
      clients: clients.length,
      open: clients.reduce((sum, client) => sum + (client.open ? 1 : 0), 0),
      received,
      duplicates,
      gaps,
      lastReceivedUs,
      reconnects,
      refused,
      handshakesPerSecond: [...handshakesPerSecond],
      // Each user is on one load generator: the driver adds these up to find what reached nobody.
      seen: withSamples ? Buffer.from(seen.buffer, seen.byteOffset, seen.length).toString('base64') : '',
      samples: withSamples ? Array.from(samples.values()) : []
    }
  },

  /** Closes every client, without reconnecting. */
  'scale-disconnect': async () => {
    stopping = true
    const closing = clients.splice(0).map((client) => new Promise((resolve) => {
      const ws = client.ws
      if (ws === null || ws.readyState === WebSocket.CLOSED) return resolve(null)
      ws.once('close', resolve)
      ws.terminate()
    }))
    await Promise.all(closing)
    return { closed: closing.length }
  }
}
