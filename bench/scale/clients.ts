import WebSocket, { type RawData } from 'ws'
import { backoffDelay } from '../../client/backoff.js'
import type { Handlers } from '../lib/ipc.js'
import { nowUs, signToken, userName } from '../lib/shared.js'
import { pool, Samples, round } from '../lib/stats.js'
import { emptyDelivery, readDelivery, readFloor, splitMessageId, type Delivery } from './delivery-frame.js'
import { roomName, SCALE_PRIVATE } from './streams.js'

// The scale scenario's clients, run inside the load generator: each is one user, subscribed to its
// private stream and one public room. A socket that closes reconnects as the SDK does (its backoff,
// `since` the last id of each stream) to another instance, chosen at random. Deliveries are counted
// per sequence number, so that the storm can tell what never arrived. The load generators share
// the cores the instances are measured on, so a delivery is read in place (delivery-frame.ts), and
// each stream's last id is kept as its two numbers, compared as the SDK's isNewer does.

const BACKOFF = { min: 500, max: 20_000 }
const CONNECT_TIMEOUT_MS = 60_000
const NONE = -1

interface ScaleClient {
  index: number
  port: number
  ws: WebSocket | null
  open: boolean
  /** Failed attempts since the last subscribe (the backoff's exponent). */
  attempt: number
  /** When its subscribed socket closed (nowUs), while it reconnects. */
  droppedAt: number
  // The last id of each stream, `<ms>-<seq>`, or NONE.
  privateMs: number
  privateSeq: number
  roomMs: number
  roomSeq: number
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
// Message frames whose id is not `<ms>-<seq>` (SPEC section 4): counted, never delivered.
let malformed = 0
let lastReceivedUs = 0
// Successful (re)subscribes per wall-clock second (driver clock: nowUs), for the storm's peak rate.
const handshakesPerSecond = new Map<number, number>()
let reconnects = 0
// Handshakes an instance answered with an HTTP error (work refused), not a refused TCP connect.
let refused = 0
// Why reconnect attempts failed, by reason; and for each successful reconnect: the attempts it
// took, the time since its socket dropped, and how long its last (successful) attempt took.
const failures = new Map<string, number>()
// The time failed attempts took (µs), by reason: a timeout and a refused connect differ by seconds.
const failedAttemptUs = new Map<string, number>()
const reconnectAttempts = new Map<number, number>()
const reconnectUs = new Samples()
const handshakeUs = new Samples()
// Reused for every frame: reading a delivery allocates nothing but its stream name.
const delivery: Delivery = emptyDelivery()

/** `<ms>-<seq>`: the `since` the SDK would send. */
function since (ms: number, seq: number): string | undefined {
  return ms === NONE ? undefined : `${ms}-${seq}`
}

function deliver (client: ScaleClient, { stream, idMs, idSeq, seq, t }: Delivery): void {
  const isPrivate = stream === SCALE_PRIVATE
  const lastMs = isPrivate ? client.privateMs : client.roomMs
  const lastSeq = isPrivate ? client.privateSeq : client.roomSeq
  if (lastMs !== NONE && (idMs < lastMs || (idMs === lastMs && idSeq <= lastSeq))) {
    duplicates++
    return
  }
  if (isPrivate) {
    client.privateMs = idMs
    client.privateSeq = idSeq
  } else {
    client.roomMs = idMs
    client.roomSeq = idSeq
  }
  const now = nowUs()
  samples.add(now - t)
  received++
  lastReceivedUs = now
  const slot = seq - seqBase
  if (isPrivate && slot >= 0 && slot < seen.length && seen[slot] < 255) seen[slot]++
}

/** A broadcast floor frame (scenario.ts), written at `t`: counted and timed as a delivery, never deduplicated. */
function deliverFloor (t: number): void {
  const now = nowUs()
  samples.add(now - t)
  received++
  lastReceivedUs = now
}

/** A message frame of another shape than delivery-frame.ts reads: parsed whole. */
function deliverParsed (client: ScaleClient, frame: { stream: string, id: string, data: { seq: number, t: number } }): void {
  const id = splitMessageId(frame.id)
  if (id === null) {
    malformed++
    return
  }
  deliver(client, { stream: frame.stream, idMs: id[0], idSeq: id[1], seq: frame.data.seq, t: frame.data.t })
}

/** Why an attempt failed, as few words: the reasons are counted. */
class AttemptError extends Error {
  constructor (readonly reason: string, message = reason) {
    super(message)
  }
}

/** Connects `client` and resolves once both its streams are subscribed (rejects with an AttemptError). */
function connect (client: ScaleClient): Promise<void> {
  const user = userName(client.index)
  const localAddress = addresses > 1 ? `127.0.0.${1 + (client.index % addresses)}` : undefined
  // No UTF-8 check of every frame: the apparatus trusts the edge's text, and counts what it reads.
  const ws = new WebSocket(`ws://127.0.0.1:${client.port}/ws?token=${signToken(user)}`, { localAddress, perMessageDeflate: false, skipUTF8Validation: true })
  client.ws = ws
  const privateSince = since(client.privateMs, client.privateSeq)
  const roomSince = since(client.roomMs, client.roomSeq)
  const streams = [
    privateSince === undefined ? SCALE_PRIVATE : { stream: SCALE_PRIVATE, since: privateSince },
    roomSince === undefined ? roomName(client.index) : { stream: roomName(client.index), since: roomSince }
  ]
  const began = nowUs()
  return new Promise((resolve, reject) => {
    let settled = false
    let subscribed = false
    const fail = (err: AttemptError): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      ws.terminate()
      failedAttemptUs.set(err.reason, (failedAttemptUs.get(err.reason) ?? 0) + nowUs() - began)
      reject(err)
    }
    const timer = setTimeout(() => fail(new AttemptError('timeout', 'no subscription within 60 s')), CONNECT_TIMEOUT_MS)
    ws.once('unexpected-response', (_req, res) => {
      refused++
      fail(new AttemptError(`HTTP ${res.statusCode}`, `handshake answered ${res.statusCode}`))
    })
    ws.once('error', (err: NodeJS.ErrnoException) => fail(new AttemptError(err.code ?? 'error', err.message)))
    ws.once('close', (code: number) => {
      client.open = false
      if (!settled) fail(new AttemptError(`closed ${code} before subscribing`))
      // Only a subscribed socket's close starts a reconnect: a failed attempt's socket closes too
      // (terminate, or ws after an error), and its rejection already schedules the next attempt.
      else if (subscribed && !stopping) {
        client.droppedAt = nowUs()
        reconnect(client)
      }
    })
    ws.once('open', () => ws.send(JSON.stringify({ event: 'subscribe', streams, id: 's' })))
    ws.on('message', (raw: RawData) => {
      if (readDelivery(raw as Buffer, delivery)) return deliver(client, delivery)
      const floorT = readFloor(raw as Buffer)
      if (!Number.isNaN(floorT)) return deliverFloor(floorT)
      const frame = JSON.parse(raw.toString())
      if (frame.event === 'message') return deliverParsed(client, frame)
      if (frame.event === 'subscribed' && !settled) {
        settled = true
        subscribed = true
        clearTimeout(timer)
        client.open = true
        handshakeUs.add(nowUs() - began)
        gaps += frame.gaps?.length ?? 0
        resolve()
      } else if (frame.event === 'gap') {
        gaps += frame.streams.length
      } else if (frame.event === 'error') {
        fail(new AttemptError(`error frame ${frame.code}`, `${frame.code}: ${frame.message}`))
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
      const now = nowUs()
      const second = Math.floor(now / 1e6)
      handshakesPerSecond.set(second, (handshakesPerSecond.get(second) ?? 0) + 1)
      reconnectAttempts.set(client.attempt, (reconnectAttempts.get(client.attempt) ?? 0) + 1)
      reconnectUs.add(now - client.droppedAt)
      client.attempt = 0
    }, (err: Error) => {
      const reason = err instanceof AttemptError ? err.reason : 'error'
      failures.set(reason, (failures.get(reason) ?? 0) + 1)
      if (!stopping) reconnect(client)
    })
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
      const client: ScaleClient = {
        index, port: ports[index % ports.length], ws: null, open: false, attempt: 0, droppedAt: 0, privateMs: NONE, privateSeq: 0, roomMs: NONE, roomSeq: 0
      }
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
    malformed = 0
    handshakesPerSecond.clear()
    failures.clear()
    failedAttemptUs.clear()
    reconnectAttempts.clear()
    reconnectUs.reset()
    handshakeUs.reset()
    seqBase = firstSeq
    seen = new Uint8Array(count)
  },

  /** Where the clients are; with `detail`, every latency sample (µs) and the private seqs seen since `scale-arm`. */
  'scale-status': ({ detail: withSamples = false }: { detail?: boolean }) => {
    const cpu = process.cpuUsage()
    return {
      // This process's CPU so far (µs, its own clock): what a delivery costs the apparatus.
      cpuUs: cpu.user + cpu.system,
      clients: clients.length,
      open: clients.reduce((sum, client) => sum + (client.open ? 1 : 0), 0),
      received,
      duplicates,
      gaps,
      lastReceivedUs,
      reconnects,
      refused,
      malformed,
      handshakesPerSecond: [...handshakesPerSecond],
      failures: [...failures],
      failedAttemptUs: [...failedAttemptUs],
      reconnectAttempts: [...reconnectAttempts],
      // Each user is on one load generator: the driver adds these up to find what reached nobody.
      seen: withSamples ? Buffer.from(seen.buffer, seen.byteOffset, seen.length).toString('base64') : '',
      samples: withSamples ? Array.from(samples.values()) : [],
      reconnectUs: withSamples ? Array.from(reconnectUs.values()) : [],
      handshakeUs: withSamples ? Array.from(handshakeUs.values()) : []
    }
  },

  /** Drops every open client's socket from its side: each reconnects as after a drop (probe.ts measures the handshakes). */
  'scale-redial': () => {
    for (const client of clients) if (client.open) client.ws?.terminate()
    return { dropped: clients.length }
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
