import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { io as sio, type Socket } from 'socket.io-client'
import { Agent, request } from 'undici'
import WebSocket from 'ws'
import { argument, Peer } from './lib/ipc.js'
import { nowUs, signToken } from './lib/shared.js'
import { Samples, round } from './lib/stats.js'

// `npm run bench:chat`: the chat scenario of SPEC section 13 (issue 26), apart from the main
// driver. `rooms` × `members` clients, each publishing about once a second for `seconds`, to
// their room: notify-edge client publish (rooms modelled as public streams: one declared stream
// per room, until channels land) against Socket.IO rooms (emit → server → to(room).emit) in the
// same run. Server CPU per delivered message and publish-to-deliver latency, as ratios; then
// `orders.place` over RPC against a plain keep-alive POST to the same route, CPU per call.
// One instance only. Small by default: `--rooms 1000 --members 10 --seconds 10` is the size.

const here = dirname(fileURLToPath(import.meta.url))
const rooms = Number(argument('rooms') ?? 20)
const members = Number(argument('members') ?? 5)
const seconds = Number(argument('seconds') ?? 3)
const calls = Number(argument('calls') ?? 500)

interface Member { room: string, user: string, send: (seq: number) => void, close: () => void }
interface Tally { delivered: number, lat: Samples }

function payload (seq: number): { seq: number, t: number, text: string } {
  return { seq, t: nowUs(), text: 'hello room' }
}

async function edgeMember (port: number, room: string, user: string, tally: Tally): Promise<Member> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${signToken(user)}`)
  ws.on('message', (raw) => {
    const frame = JSON.parse(raw.toString())
    if (frame.event === 'message') {
      tally.delivered++
      tally.lat.add(nowUs() - frame.data.t)
    } else if (frame.event === 'error') {
      throw new Error(`edge error: ${raw.toString()}`)
    }
  })
  await once(ws, 'open')
  ws.send(JSON.stringify({ event: 'subscribe', streams: [room], id: 's' }))
  await new Promise<void>((resolve) => ws.on('message', function wait (raw) {
    if (JSON.parse(raw.toString()).event === 'subscribed') { ws.off('message', wait); resolve() }
  }))
  return { room, user, send: (seq) => ws.send(JSON.stringify({ event: 'publish', stream: room, data: payload(seq), id: seq })), close: () => ws.close() }
}

async function sioMember (port: number, room: string, user: string, tally: Tally): Promise<Member> {
  const socket: Socket = sio(`http://127.0.0.1:${port}`, { transports: ['websocket'], auth: { token: signToken(user) }, reconnection: false })
  socket.on('message', (message: { data: { t: number } }) => {
    tally.delivered++
    tally.lat.add(nowUs() - message.data.t)
  })
  await new Promise((resolve) => socket.once('connect', () => resolve(undefined)))
  await socket.emitWithAck('join', room)
  return { room, user, send: (seq) => { socket.emit('chat', room, payload(seq), () => {}) }, close: () => socket.close() }
}

async function chat (kind: 'edge' | 'socketio'): Promise<Record<string, number>> {
  const server = await Peer.spawn(kind, join(here, 'servers', 'chat.js'), ['--kind', kind, '--rooms', String(rooms)])
  const port = server.info.port as number
  const tally: Tally = { delivered: 0, lat: new Samples() }
  const all: Member[] = []
  try {
    for (let r = 0; r < rooms; r++) {
      for (let m = 0; m < members; m++) {
        const make = kind === 'edge' ? edgeMember : sioMember
        all.push(await make(port, `room-${r}`, `u${r}-${m}`, tally))
      }
    }
    await server.call('cpu-start')
    // Each member publishes once a second, at its own offset within the second.
    const timers = all.map((member, i) => {
      let seq = 0
      const start = setTimeout(() => {
        member.send(++seq)
        const every = setInterval(() => { if (seq < seconds) member.send(++seq); else clearInterval(every) }, 1000)
        timers.push(every)
      }, (i * 1000) / all.length)
      return start
    })
    const expected = all.length * members * seconds
    const deadline = Date.now() + seconds * 1000 + 10_000
    while (tally.delivered < expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
    for (const timer of timers) clearTimeout(timer)
    const { us } = await server.call<{ us: number }>('cpu')
    const lat = tally.lat.summary()
    return { delivered: tally.delivered, expected, cpuPerDeliveryUs: round(us / Math.max(1, tally.delivered), 2), p50Ms: lat.p50, p99Ms: lat.p99 }
  } finally {
    for (const member of all) member.close()
    await server.stop()
  }
}

async function rpcAgainstPost (): Promise<Record<string, number>> {
  const server = await Peer.spawn('edge', join(here, 'servers', 'chat.js'), ['--kind', 'edge', '--rooms', '1'])
  const port = server.info.port as number
  const agent = new Agent({ connections: 10 })
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${signToken('caller')}`)
  try {
    await once(ws, 'open')
    const waiting = new Map<number, () => void>()
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      if (frame.event === 'result') waiting.get(frame.id)?.()
      else if (frame.event === 'error') throw new Error(raw.toString())
    })
    let id = 0
    const rpc = (): Promise<void> => new Promise((resolve) => {
      const n = ++id
      waiting.set(n, () => { waiting.delete(n); resolve() })
      ws.send(JSON.stringify({ event: 'rpc', method: 'orders.place', data: { item: 'tea' }, id: n }))
    })
    const post = async (): Promise<void> => {
      const res = await request(`http://127.0.0.1:${port}/orders`, { dispatcher: agent, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"item":"tea"}' })
      await res.body.text()
    }
    // Ten at a time, both ways; a warm-up round first.
    const run = async (one: () => Promise<void>, count: number): Promise<number> => {
      await server.call('cpu-start')
      for (let done = 0; done < count; done += 10) await Promise.all(Array.from({ length: 10 }, one))
      return (await server.call<{ us: number }>('cpu')).us / count
    }
    await run(rpc, 100)
    await run(post, 100)
    const rpcUs = await run(rpc, calls)
    const postUs = await run(post, calls)
    return { rpcCpuPerCallUs: round(rpcUs, 2), postCpuPerCallUs: round(postUs, 2), ratio: round(rpcUs / postUs, 2) }
  } finally {
    ws.close()
    await agent.close()
    await server.stop()
  }
}

const edge = await chat('edge')
const socketio = await chat('socketio')
const rpc = await rpcAgainstPost()
const result = {
  params: { rooms, members, seconds, calls, instances: 1, roomsAre: 'declared public streams (channels not merged yet)' },
  edge,
  socketio,
  ratios: { cpuPerDelivery: round(edge.cpuPerDeliveryUs / socketio.cpuPerDeliveryUs, 2), p99: round(edge.p99Ms / socketio.p99Ms, 2) },
  rpc
}
console.log(JSON.stringify(result, null, 2))
process.exit(0)
