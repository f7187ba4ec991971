import WebSocket, { type RawData } from 'ws'
import type { Handlers } from '../lib/ipc.js'
import { nowUs, signToken } from '../lib/shared.js'
import { pool, Samples, steady } from '../lib/stats.js'

// The chat scenario's clients (bench/chat.ts), run inside a load generator process: each is one
// member of one room, subscribed to it, publishing to it on the driver's schedule. notify-edge
// members speak this project's protocol (subscribe to `room:<key>`, `publish` frames); Socket.IO
// members speak Engine.IO 4 over WebSocket with the same `ws` library (`join`, then `chat` emits
// with an acknowledgement). A delivery is counted from its first bytes; only every
// `sampleEvery`-th is searched for its timestamp, and nothing is parsed whole: the clients must
// not take the CPU the servers are measured on.

export type ChatProtocol = 'notify' | 'sio'
/** One member: its room, its index in the room, and the port of the instance it connects to. */
export interface Seat { room: number, member: number, port: number }

const CONNECT_TIMEOUT_MS = 60_000
const EDGE_MESSAGE = '{"event":"message"'
const EDGE_PUBLISHED = '{"event":"published"'

interface Member { send: (t: number) => void, ws: WebSocket }

const members: Member[] = []
const samples = new Samples()
let sampleEvery = 1
let delivered = 0
let published = 0
let acked = 0
let errors = 0
let firstError: string | null = null

export const roomKey = (room: number): string => `r${room}`
export const memberName = (seat: Seat): string => `m${seat.room}-${seat.member}`

function failed (text: string): void {
  errors++
  firstError ??= text.slice(0, 300)
}

/** A delivery: its publish timestamp is the number after the first `"t":` (the data's first field). */
function deliver (text: string): void {
  if (++delivered % sampleEvery !== 0) return
  const at = text.indexOf('"t":') + 4
  samples.add(nowUs() - Number(text.slice(at, text.indexOf(',', at))))
}

const payload = (t: number): string => `{"t":${t},"text":"hello room"}`

/** Opens one member and resolves once it is in its room. */
function open (protocol: ChatProtocol, seat: Seat, localAddress: string | undefined): Promise<Member> {
  const token = signToken(memberName(seat))
  const url = protocol === 'notify'
    ? `ws://127.0.0.1:${seat.port}/ws?token=${token}`
    : `ws://127.0.0.1:${seat.port}/socket.io/?EIO=4&transport=websocket`
  const ws = new WebSocket(url, { localAddress, perMessageDeflate: false })
  let sent = 0
  const member: Member = protocol === 'notify'
    ? { ws, send: (t) => ws.send(`{"event":"publish","stream":"room:${roomKey(seat.room)}","data":${payload(t)},"id":"${++sent}"}`) }
    // Ack ids from 1: 0 is the join's.
    : { ws, send: (t) => ws.send(`42${++sent}["chat","${roomKey(seat.room)}",${payload(t)}]`) }
  return new Promise((resolve, reject) => {
    let joined = false
    const fail = (err: Error): void => {
      clearTimeout(timer)
      ws.terminate()
      reject(err)
    }
    const ready = (): void => {
      joined = true
      clearTimeout(timer)
      resolve(member)
    }
    const timer = setTimeout(() => fail(new Error('not in its room within 60 s')), CONNECT_TIMEOUT_MS)
    ws.once('unexpected-response', (_req, res) => fail(new Error(`handshake answered ${res.statusCode}`)))
    ws.once('error', (err) => { if (!joined) fail(err) })
    ws.once('close', () => { if (!joined) fail(new Error('closed before joining')) })
    if (protocol === 'notify') {
      ws.once('open', () => ws.send(JSON.stringify({ event: 'subscribe', streams: [`room:${roomKey(seat.room)}`], id: 's' })))
      ws.on('message', (data: RawData) => {
        const text = data.toString()
        if (text.startsWith(EDGE_MESSAGE)) return deliver(text)
        if (text.startsWith(EDGE_PUBLISHED)) {
          acked++
          return
        }
        const frame = JSON.parse(text)
        if (frame.event === 'subscribed' && !joined) ready()
        else if (frame.event === 'error') joined ? failed(text) : fail(new Error(`${frame.code}: ${frame.message}`))
      })
    } else {
      ws.on('message', (data: RawData) => {
        const text = data.toString()
        if (text.startsWith('42')) return deliver(text)
        if (text.startsWith('43')) {
          if (joined) acked++
          else ready()
          return
        }
        if (text === '2') ws.send('3')
        else if (text.startsWith('0')) ws.send(`40${JSON.stringify({ token })}`)
        else if (text.startsWith('40')) ws.send(`420${JSON.stringify(['join', roomKey(seat.room)])}`)
        else if (text.startsWith('44')) joined ? failed(text) : fail(new Error(`connect error ${text.slice(2)}`))
      })
    }
  })
}

export const chatClients: Handlers = {
  /** Opens a member per seat, in the order given (the order they publish in). */
  'chat-connect': async ({ protocol, seats, concurrency, addresses }: { protocol: ChatProtocol, seats: Seat[], concurrency: number, addresses: number }) => {
    const opened: Member[] = new Array(seats.length)
    await pool(seats.length, concurrency, async (i) => {
      opened[i] = await open(protocol, seats[i], addresses > 1 ? `127.0.0.${1 + (i % addresses)}` : undefined)
    })
    members.push(...opened)
    return { connected: members.length }
  },

  /** Counts from zero; latency of every `every`-th delivery. */
  'chat-arm': ({ every }: { every: number }) => {
    samples.reset()
    sampleEvery = Math.max(1, Math.floor(every))
    delivered = published = acked = errors = 0
    firstError = null
  },

  /**
   * Every member publishes `rounds` times, once a second, the members spread evenly over the
   * second (member i at i/n of it), from `startUs` + `phase` of one member's slot: the load
   * generators' slots interleave.
   */
  'chat-run': async ({ rounds, startUs, phase }: { rounds: number, startUs: number, phase: number }) => {
    const n = members.length
    if (n === 0) return
    await steady(n * rounds, n, (i) => {
      members[i % n].send(nowUs())
      published++
    }, startUs + (phase * 1e6) / n)
  },

  'chat-status': ({ withSamples }: { withSamples: boolean }) =>
    ({ delivered, published, acked, errors, firstError, samples: withSamples ? Array.from(samples.values()) : [] }),

  'chat-disconnect': async () => {
    const closing = members.splice(0).map(({ ws }) => new Promise((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve(null)
      ws.once('close', resolve)
      ws.terminate()
    }))
    await Promise.all(closing)
  }
}
