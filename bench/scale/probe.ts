import { execFileSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { argument, Peer } from '../lib/ipc.js'
import { processCpuUs, startRedis } from '../lib/redis.js'
import { round } from '../lib/stats.js'

// A small local probe of two per-socket costs the scale scenario sees, on one edge instance with
// its clients in another process (`node bench/build.js && node node_modules/.cache/notify-edge-bench/bench/scale/probe.js`):
// - heartbeat: the server's CPU per socket per ping/pong cycle, with --heartbeat-interval shortened
//   to amplify it, and the part of it spent in the ping sweep itself;
// - handshakes: the server's CPU per reconnect with `since` (the storm's work), see `handshakes`;
// - broadcast: the server's CPU per delivery when each socket gets one message at a time (the scale
//   scenario's broadcast) and when it gets --burst messages at once (the fan-out scenario's burst).
// With --base <dir> (another checkout's transpiled bench) its edge runs alongside, measured over the
// same windows, with its own load generator, so that the two compare on one busy machine (the
// clients' CPU per delivery too). CPU figures are relative, never targets.

const here = dirname(fileURLToPath(import.meta.url))
const connections = Number(argument('connections') ?? 5000)
const interval = Number(argument('heartbeat-interval') ?? 250)
const cycles = Number(argument('cycles') ?? 20)
const rounds = Number(argument('rounds') ?? 3)
const burst = Number(argument('burst') ?? 20)
const measure = argument('measure') ?? 'heartbeat'
const base = argument('base')
// --profile <dir>: each measured window of each edge is written there as a .cpuprofile (bench/servers/control.ts).
const profile = argument('profile')

interface Cpu { us: number, systemUs?: number }
interface Edge { label: string, server: Peer, loadgen: Peer }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// From /proc (10 ms ticks, enough over a round): a base checkout's load generator reports no CPU of its own.
const clientCpu = async (edge: Edge): Promise<number> => processCpuUs(edge.loadgen.child.pid!)

/** The servers' CPU over `work`, and their load generators' (µs each). */
async function cpuOver (edges: Edge[], work: () => Promise<unknown>): Promise<{ server: number[], serverSystem: number[], client: number[] }> {
  for (const { server } of edges) await server.call('memory')
  for (const { server } of edges) await server.call('cpu-start')
  const clientBefore = await Promise.all(edges.map(clientCpu))
  await work()
  const cpus = await Promise.all(edges.map(({ server }) => server.call<Cpu>('cpu')))
  const client = await Promise.all(edges.map(clientCpu))
  return { server: cpus.map((cpu) => cpu.us), serverSystem: cpus.map((cpu) => cpu.systemUs ?? NaN), client: client.map((us, i) => us - clientBefore[i]) }
}

async function received (edge: Edge, expected: number): Promise<void> {
  const deadline = Date.now() + 60_000
  while ((await edge.loadgen.call<{ received: number }>('scale-status', {})).received < expected) {
    if (Date.now() > deadline) throw new Error(`${edge.label}: fewer than ${expected} deliveries after 60 s`)
    await sleep(20)
  }
}

async function heartbeat (edges: Edge[]): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    const before = await Promise.all(edges.map(({ server }) => server.call<Record<string, number>>('scale-route-stats')))
    const cpu = await cpuOver(edges, () => sleep(cycles * interval))
    const after = await Promise.all(edges.map(({ server }) => server.call<Record<string, number>>('scale-route-stats')))
    edges.forEach((edge, i) => {
      const sweeps = (after[i].heartbeatSweeps ?? NaN) - (before[i].heartbeatSweeps ?? NaN)
      const sweepUs = (after[i].heartbeatSweepCpuUs ?? NaN) - (before[i].heartbeatSweepCpuUs ?? NaN)
      console.log(`${edge.label} round ${r}: ${round(cpu.server[i] / connections / cycles, 3)} µs per socket per cycle in all (${round(cpu.serverSystem[i] / connections / cycles, 3)} µs in the kernel)` +
        (Number.isNaN(sweeps) ? '' : `, of which the sweeps ${round(sweepUs / connections / Math.max(1, sweeps), 3)} µs (${sweeps} sweeps)`))
    })
  }
}

async function broadcast (edges: Edge[]): Promise<void> {
  let seq = 0
  for (let r = 0; r < rounds; r++) {
    // One message per socket at a time, each waited for: one write per delivery.
    for (const { loadgen } of edges) await loadgen.call('scale-arm')
    const single = await cpuOver(edges, async () => {
      for (let k = 1; k <= burst; k++) {
        await Promise.all(edges.map(({ server }) => server.call('scale-broadcast', { seq: seq++ })))
        await Promise.all(edges.map((edge) => received(edge, k * connections)))
      }
    })
    // The same deliveries as one burst: each socket's messages leave in one write.
    for (const { loadgen } of edges) await loadgen.call('scale-arm')
    const burstCpu = await cpuOver(edges, async () => {
      await Promise.all(edges.map(({ server }) => server.call('scale-broadcast', { seq, count: burst })))
      seq += burst
      await Promise.all(edges.map((edge) => received(edge, burst * connections)))
    })
    edges.forEach((edge, i) => {
      const deliveries = burst * connections
      console.log(`${edge.label} round ${r}: ${round(single.server[i] / deliveries, 3)} µs per delivery one message at a time (${round(single.serverSystem[i] / deliveries, 3)} in the kernel), ` +
        `${round(burstCpu.server[i] / deliveries, 3)} µs in bursts of ${burst}; ` +
        `load generator ${round(single.client[i] / deliveries, 3)} µs per delivery one at a time, ${round(burstCpu.client[i] / deliveries, 3)} in bursts`)
    })
  }
}

/**
 * Reconnects: every client drops its socket and reconnects as after a storm (the SDK's backoff, then
 * a handshake and a subscribe with `since` on both streams: history is read). The server's CPU
 * per reconnect (its close included) and the load generator's.
 */
async function handshakes (edges: Edge[]): Promise<void> {
  // A `since` on both streams, as the storm's clients have.
  for (const edge of edges) {
    await edge.loadgen.call('scale-arm')
    await edge.server.call('scale-broadcast', { seq: 0 })
    await edge.server.call('scale-prime', { users: connections, seq: 1 })
    await received(edge, 2 * connections)
  }
  for (let r = 0; r < rounds; r++) {
    for (const { loadgen } of edges) await loadgen.call('scale-arm')
    const commandsBefore = redisCommands()
    const cpu = await cpuOver(edges, async () => {
      await Promise.all(edges.map(({ loadgen }) => loadgen.call('scale-redial')))
      await Promise.all(edges.map((edge) => reconnected(edge, connections)))
    })
    edges.forEach((edge, i) => {
      console.log(`${edge.label} round ${r}: ${round(cpu.server[i] / connections, 1)} µs of server CPU per reconnect (${round(cpu.serverSystem[i] / connections, 1)} µs of it in the kernel), ` +
        `${round(cpu.client[i] / connections, 1)} µs in the load generator`)
    })
    // Every edge's reconnects went to the one Redis.
    const commandsAfter = redisCommands()
    const perReconnect = [...commandsAfter].map(([name, calls]) => [name, round((calls - (commandsBefore.get(name) ?? 0)) / (connections * edges.length), 2)] as const).filter(([, calls]) => calls > 0)
    console.log(`  Redis commands per reconnect: ${perReconnect.map(([name, calls]) => `${name} ${calls}`).join(', ')}`)
  }
}

/** Calls per command so far on the probe's Redis (INFO commandstats). */
function redisCommands (): Map<string, number> {
  const info = execFileSync('redis-cli', ['-u', redis.url, 'INFO', 'commandstats'], { encoding: 'utf8' })
  return new Map([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((match) => [match[1], Number(match[2])]))
}

async function reconnected (edge: Edge, expected: number): Promise<void> {
  const deadline = Date.now() + 120_000
  for (;;) {
    const status = await edge.loadgen.call<{ reconnects: number, open: number }>('scale-status', {})
    if (status.reconnects >= expected && status.open >= expected) return
    if (Date.now() > deadline) throw new Error(`${edge.label}: ${status.reconnects} of ${expected} reconnected after 120 s`)
    await sleep(50)
  }
}

const redis = await startRedis()
const edges: Edge[] = []
try {
  const scripts = [{ label: 'this', dir: join(here, '..') }, ...(base === undefined ? [] : [{ label: 'base', dir: join(base, 'bench') }])]
  for (const { label, dir } of scripts) {
    const args = ['--redis', redis.url, '--streams', 'scale', '--heartbeat-interval', String(measure === 'heartbeat' ? interval : 30_000), ...(profile === undefined ? [] : ['--profile', profile])]
    const server = await Peer.spawn(`${label}-edge`, join(dir, 'servers', 'edge.js'), args, ['--expose-gc'])
    // Each checkout's own load generator: its clients' CPU per delivery compares too.
    const loadgen = await Peer.spawn(`${label}-loadgen`, join(dir, 'loadgen.js'), [], ['--max-old-space-size=4096'])
    await loadgen.call('scale-connect', { ports: [server.info.port], first: 0, count: connections, concurrency: 50, addresses: 1 })
    edges.push({ label, server, loadgen })
  }
  console.log(`${connections} sockets per edge, ${measure}${measure === 'heartbeat' ? ` every ${interval} ms over ${cycles} cycles` : `, ${burst} messages`}, ${rounds} rounds`)
  await (measure === 'broadcast' ? broadcast(edges) : measure === 'handshakes' ? handshakes(edges) : heartbeat(edges))
} finally {
  for (const { loadgen } of edges) await loadgen.call('scale-disconnect').catch(() => {})
  await Promise.all(edges.flatMap(({ server, loadgen }) => [server.stop(), loadgen.stop()]))
  await redis.stop()
}
