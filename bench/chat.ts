import { once } from 'node:events'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import WebSocket from 'ws'
import type { ChatProtocol, Seat } from './chat/clients.js'
import { chatReport, type ChatResults, type Row } from './chat/report.js'
import { argument, Peer, SERVER_NODE_FLAGS } from './lib/ipc.js'
import { environment, loadAverage } from './lib/machine.js'
import { processCpuUs, startRedis } from './lib/redis.js'
import { nowUs, signToken } from './lib/shared.js'
import { Samples, round } from './lib/stats.js'
import { within } from '../plugins/util.js'

// `npm run bench:chat`: the "chat" scenario of issue 26 (SPEC sections 12 and 13). `rooms` ×
// `members` clients, each in one room and publishing to it about once a second for `seconds`
// (the members spread evenly over each second): notify-edge's client publish to the keys of one
// channel stream `room`, against Socket.IO rooms (client emit → server → to(room).emit), in the
// same run, on one instance and on two (a Redis bus, each room's members split across the two).
// The servers run in processes of their own, the clients in load generators apart from them;
// server CPU per delivered message and publish-to-deliver latency, as ratios. Then `orders.place`
// over RPC against a plain keep-alive POST to the same route, server CPU per call.

const here = dirname(fileURLToPath(import.meta.url))
// Built into node_modules/.cache/notify-edge-bench/bench/ (bench/build.js): four levels below the project.
const root = join(here, '..', '..', '..', '..')
const rooms = Number(argument('rooms') ?? 1000)
const members = Number(argument('members') ?? 10)
const seconds = Number(argument('seconds') ?? 10)
const calls = Number(argument('calls') ?? 2000)
const memberPresence = argument('member-presence') === 'on'
const outFile = argument('out')
for (const [name, value] of Object.entries({ rooms, members, seconds, calls })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, not ${value}`)
}

// Members per load generator: well under the 20,000 descriptors one process may hold; at least two.
const PER_LOADGEN = 5000
const ADDRESSES = 8
const CONNECT_CONCURRENCY = 50
// A wait ends when no delivery arrived for this long; the row then says what is missing.
const IDLE_MS = 10_000
// About this many latency samples per run, whatever its size.
const SAMPLES = 200_000
const adapterInstalled = existsSync(join(root, 'node_modules', '@socket.io', 'redis-adapter', 'package.json'))
const clients = rooms * members

interface Status { delivered: number, published: number, acked: number, errors: number, firstError: string | null, samples: number[] }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Member m of room r is client m × rooms + r: consecutive clients are in different rooms. */
function seatsOf (loadgen: number, loadgens: number, ports: number[]): Seat[] {
  const seats: Seat[] = []
  for (let i = loadgen; i < clients; i += loadgens) {
    const member = Math.floor(i / rooms)
    seats.push({ room: i % rooms, member, port: ports[member % ports.length] })
  }
  return seats
}

/** Every member publishes `rounds` times; resolves once all is delivered, or nothing came for IDLE_MS. */
async function phase (loadgens: Peer[], rounds: number): Promise<Status[]> {
  const expected = clients * rounds * members
  await Promise.all(loadgens.map((loadgen) => loadgen.call('chat-arm', { every: expected / SAMPLES })))
  // Time for every load generator to hear the start before it comes.
  const startUs = nowUs() + 200_000
  await Promise.all(loadgens.map((loadgen, i) => loadgen.call('chat-run', { rounds, startUs, phase: i / loadgens.length })))
  let seen = -1
  let changed = Date.now()
  for (;;) {
    const list = await Promise.all(loadgens.map((loadgen) => loadgen.call<Status>('chat-status', { withSamples: false })))
    const sum = (key: 'delivered' | 'published' | 'acked'): number => list.reduce((total, status) => total + status[key], 0)
    const progress = sum('delivered') + sum('acked')
    if (progress !== seen) {
      seen = progress
      changed = Date.now()
    }
    if ((sum('delivered') >= expected && sum('acked') >= sum('published')) || Date.now() - changed > IDLE_MS) break
    await sleep(100)
  }
  return Promise.all(loadgens.map((loadgen) => loadgen.call<Status>('chat-status', { withSamples: true })))
}

/** One row: `instances` server processes of `kind` (on `redisUrl` when more than one). */
async function row (loadgens: Peer[], kind: 'edge' | 'socketio', instances: number, redis: { url: string, pids: number[] } | null): Promise<Row> {
  const protocol: ChatProtocol = kind === 'edge' ? 'notify' : 'sio'
  const label = `${kind}-${instances}`
  const args = ['--kind', kind, ...(redis === null ? [] : ['--redis', redis.url]), ...(memberPresence ? ['--member-presence', 'on'] : [])]
  const servers = await stage(label, 'servers starting', STAGE_MS, Promise.all(Array.from({ length: instances }, (_, i) => Peer.spawn(`${kind}-${i + 1}`, join(here, 'servers', 'chat.js'), args, SERVER_NODE_FLAGS))))
  try {
    const ports = servers.map((server) => server.info.port as number)
    await stage(label, 'members joining', STAGE_MS, Promise.all(loadgens.map((loadgen, i) => loadgen.call('chat-connect', {
      protocol, seats: seatsOf(i, loadgens.length, ports), concurrency: CONNECT_CONCURRENCY, addresses: ADDRESSES
    }))))
    // One unmeasured round: every server's hot path compiled before the window.
    await stage(label, 'warm-up round', STAGE_MS, phase(loadgens, 1))
    for (const server of servers) await server.call('gc')
    for (const server of servers) await server.call('cpu-start')
    const redisBefore = redis?.pids.map(processCpuUs) ?? []
    const list = await stage(label, 'measured rounds', STAGE_MS + seconds * 1000, phase(loadgens, seconds))
    let us = 0
    for (const server of servers) us += (await server.call<{ us: number }>('cpu')).us
    const redisUs = redis?.pids.reduce((total, pid, i) => total + processCpuUs(pid) - redisBefore[i], 0) ?? null
    const latency = new Samples()
    for (const status of list) for (const value of status.samples) latency.add(value)
    const { p50, p99 } = latency.summary()
    const total = (key: 'delivered' | 'published' | 'acked' | 'errors'): number => list.reduce((sum, status) => sum + status[key], 0)
    const delivered = total('delivered')
    const expected = clients * seconds * members
    const firstError = list.find((status) => status.firstError !== null)?.firstError
    return {
      delivered,
      expected,
      published: total('published'),
      acked: total('acked'),
      errors: total('errors'),
      cpuPerDeliveryUs: round(us / Math.max(1, delivered), 2),
      redisCpuPerDeliveryUs: redisUs === null ? null : round(redisUs / Math.max(1, delivered), 2),
      p50Ms: p50,
      p99Ms: p99,
      complete: delivered === expected && total('errors') === 0 && total('acked') === total('published'),
      ...(firstError === undefined ? {} : { firstError })
    }
  } finally {
    await stage(label, 'members leaving', STAGE_MS, Promise.all(loadgens.map((loadgen) => loadgen.call('chat-disconnect')))).catch(() => {})
    await Promise.all(servers.map((server) => server.stop()))
  }
}

// A stage that takes longer than this has stopped: the row ends with an error naming it, so
// that a run on a starved machine reports where it stood instead of hanging (a CI run did once).
const STAGE_MS = 120_000

/** `work`, or after `ms` an error naming the row and the stage; progress on stderr either way. */
async function stage<T> (label: string, what: string, ms: number, work: Promise<T>): Promise<T> {
  process.stderr.write(`bench: chat ${label}: ${what}\n`)
  const done = await within(ms, work)
  if (done === null) throw new Error(`${label}: ${what} did not finish within ${ms / 1000} s`)
  return done.value
}

async function rpcAgainstPost (): Promise<Record<string, number>> {
  const server = await Peer.spawn('edge', join(here, 'servers', 'chat.js'), ['--kind', 'edge'], SERVER_NODE_FLAGS)
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
      await server.call('gc')
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

const failure = (err: Error): Row => ({ error: err.message.split('\n')[0] })

const results: ChatResults = {
  startedAt: new Date().toISOString(),
  params: { rooms, members, seconds, calls, memberPresence },
  environment: environment(root, ['fastify', 'ws', 'socket.io', '@socket.io/redis-adapter', 'ioredis']),
  rows: {},
  rpc: {}
}
const loadgenCount = Math.max(2, Math.ceil(clients / PER_LOADGEN))
const loadgens = await Promise.all(Array.from({ length: loadgenCount }, (_, i) => Peer.spawn(`loadgen-${i + 1}`, join(here, 'loadgen.js'))))
const redis = await startRedis()
try {
  process.stderr.write(`bench: chat, ${rooms} rooms × ${members} members, ${seconds} s, ${loadgenCount} load generators\n`)
  results.rows['edge-1'] = await row(loadgens, 'edge', 1, null).catch(failure)
  results.rows['socketio-1'] = await row(loadgens, 'socketio', 1, null).catch(failure)
  results.rows['edge-2'] = await row(loadgens, 'edge', 2, redis).catch(failure)
  results.rows['socketio-2'] = adapterInstalled
    ? await row(loadgens, 'socketio', 2, redis).catch(failure)
    : { na: 'adapter not installed' }
  results.rpc = await stage('rpc', 'RPC against POST', STAGE_MS, rpcAgainstPost()).catch((err: Error) => ({ error: err.message.split('\n')[0] }))
} finally {
  await Promise.all(loadgens.map((loadgen) => loadgen.stop()))
  await redis.stop()
}
results.environment.loadAverageAfter = loadAverage()
process.stdout.write(chatReport(results))
if (outFile !== undefined) {
  mkdirSync(dirname(outFile), { recursive: true })
  writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`)
}
process.exit(0)
