import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import type { Peer } from '../lib/ipc.js'
import { processCpuUs, startRedis } from '../lib/redis.js'
import { nowUs } from '../lib/shared.js'
import { round, Samples } from '../lib/stats.js'

// The scale scenario (`npm run bench -- --sessions scale`): N users, each one socket subscribed to
// its private stream and one of 100 public rooms, over several edge instances on one Redis and
// several load generators. Memory, idle CPU, a broadcast to all, private latency at 1,000 msg/s,
// then a storm: one instance SIGKILLed while private publishing goes on. See docs/scaling.md.

export interface ScaleParams {
  connections: number
  /** Idle windows' length, rounded to whole heartbeat periods (at least one). */
  idleSeconds: number
  /** The instances' WebSocket heartbeat interval (the route's default is 30). */
  heartbeatSeconds: number
  privateRate: number
  privateSeconds: number
  stormSeconds: number
}

export interface ScaleHooks {
  /** An edge server process with these extra arguments. */
  spawnEdge (args: string[]): Promise<Peer>
  /** A load-generator process. */
  spawnLoadgen (name: string): Promise<Peer>
}

interface Status {
  clients: number
  open: number
  received: number
  duplicates: number
  gaps: number
  lastReceivedUs: number
  reconnects: number
  refused: number
  malformed: number
  handshakesPerSecond: Array<[number, number]>
  failures: Array<[string, number]>
  failedAttemptUs: Array<[string, number]>
  reconnectAttempts: Array<[number, number]>
  seen: string
  samples: number[]
  reconnectUs: number[]
  handshakeUs: number[]
}

// The most descriptors one process may hold (the rule), and what a process needs besides sockets.
const FD_CAP = 20_000
const FD_SPARE = 1_000
const ADDRESSES = 8
const CONNECT_CONCURRENCY = 50
const IDLE_MS = 15_000
const STORM_TIMEOUT_MS = 120_000
const LISTEN_BACKLOG = 65_535

// The kernel's counts of connects an accept queue (or SYN queue) could not hold, and SYNs sent
// again: machine-wide (another process's listener counts too), read around the storm.
const TCP_COUNTERS = ['ListenOverflows', 'ListenDrops', 'TCPReqQFullDoCookies', 'TCPReqQFullDrop', 'TCPSynRetrans']

export function tcpCounters (): Record<string, number> {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((line) => line.startsWith('TcpExt:'))
  const names = lines[0].split(' ')
  const values = lines[1].split(' ')
  return Object.fromEntries(TCP_COUNTERS.map((name) => [name, Number(values[names.indexOf(name)])]))
}

/** Instances: at least 6, and enough that the survivors of a storm stay under the cap. */
export function layout (connections: number): { instances: number, loadgens: number } {
  const perProcess = FD_CAP - FD_SPARE
  return { instances: Math.max(6, 1 + Math.ceil(connections / perProcess)), loadgens: Math.max(2, Math.ceil(connections / perProcess)) }
}

function fileLimit (pid: number | 'self'): { soft: number, hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!
  const [soft, hard] = line.split(/\s+/).slice(3, 5).map((v) => v === 'unlimited' ? Infinity : Number(v))
  return { soft, hard }
}

/** Raises a process's soft descriptor limit to its hard limit (capped at FD_CAP); says what it got. */
function raiseFileLimit (pid: number): { soft: number, hard: number, raised: boolean, note?: string } {
  const { soft, hard } = fileLimit(pid)
  const wanted = Math.min(hard, FD_CAP)
  if (soft >= wanted) return { soft, hard, raised: false }
  try {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${wanted}:${hard === Infinity ? 'unlimited' : hard}`])
    return { ...fileLimit(pid), raised: true }
  } catch (err) {
    return { soft, hard, raised: false, note: `cannot raise: ${(err as Error).message.split('\n')[0]}` }
  }
}

function somaxconn (): number {
  return Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))
}

/** TCP sockets in use and their kernel buffer memory (bytes), machine-wide, from /proc/net/sockstat. */
export function sockstat (): { inuse: number, memBytes: number } {
  const tcp = readFileSync('/proc/net/sockstat', 'utf8').split('\n').find((l) => l.startsWith('TCP:'))!
  const field = (name: string): number => Number(new RegExp(`${name} (\\d+)`).exec(tcp)![1])
  return { inuse: field('inuse'), memBytes: field('mem') * 4096 }
}

// The kernel's per-socket objects (struct tcp_sock, its inode), which sockstat's `mem` (buffer pages) leaves out.
const SLABS = ['TCP', 'TCPv6', 'sock_inode_cache']

/** Bytes in the kernel's socket slabs (active objects × size), or null where /proc/slabinfo is not readable. */
export function socketSlabBytes (): number | null {
  try {
    let bytes = 0
    for (const line of readFileSync('/proc/slabinfo', 'utf8').split('\n')) {
      const [name, active, , size] = line.split(/\s+/)
      if (SLABS.includes(name)) bytes += Number(active) * Number(size)
    }
    return bytes
  } catch {
    return null
  }
}

const cpuOf = (peers: Peer[]): number => peers.reduce((sum, peer) => sum + processCpuUs(peer.child.pid!), 0)
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

async function statuses (loadgens: Peer[], detail = false): Promise<Status[]> {
  return Promise.all(loadgens.map((loadgen) => loadgen.call<Status>('scale-status', { detail })))
}

/** Tracked private messages that reached no load generator, but for the `refused` slots (publishes that failed). */
function missing (list: Status[], refused: Set<number> = new Set()): number {
  const totals = list.map((status) => Buffer.from(status.seen, 'base64'))
  let count = 0
  for (let slot = 0; slot < (totals[0]?.length ?? 0); slot++) if (!refused.has(slot) && totals.every((seen) => seen[slot] === 0)) count++
  return count
}

interface Failures { count: number, first: string | null, seqs: number[] }

/** Adds up the load generators' [key, count] pairs. */
function merged<K extends string | number> (list: Status[], pick: (status: Status) => Array<[K, number]>): Map<K, number> {
  const total = new Map<K, number>()
  for (const status of list) for (const [key, count] of pick(status)) total.set(key, (total.get(key) ?? 0) + count)
  return total
}

/** Quantiles of µs samples, in ms. */
function quantilesMs (values: number[]): { count: number, p10: number, p50: number, p90: number, p99: number, max: number } | null {
  if (values.length === 0) return null
  const sorted = Float64Array.from(values).sort()
  const at = (q: number): number => round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] / 1000, 0)
  return { count: sorted.length, p10: at(0.1), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) }
}

/**
 * Why the storm's clients took as long as they did: each failed attempt's reason (and the mean time
 * such an attempt took), how many attempts each reconnect needed, the time from its drop to
 * subscribed again and the time of its last (successful) attempt, and reconnects per second after the kill.
 */
function stormDetail (list: Status[], killedAt: number): Record<string, unknown> {
  const failures = merged(list, (status) => status.failures)
  const failedUs = merged(list, (status) => status.failedAttemptUs)
  const attempts = merged(list, (status) => status.reconnectAttempts)
  const perSecond = merged(list, (status) => status.handshakesPerSecond)
  const killedSecond = Math.floor(killedAt / 1e6)
  const seconds = [...perSecond.keys()].map((second) => second - killedSecond)
  const bySecond = Array.from({ length: seconds.length === 0 ? 0 : Math.max(...seconds) + 1 }, (_, i) => perSecond.get(killedSecond + i) ?? 0)
  return {
    failedAttempts: Object.fromEntries([...failures].sort((a, b) => b[1] - a[1])),
    failedAttemptMeanMs: Object.fromEntries([...failedUs].map(([reason, us]) => [reason, round(us / 1000 / (failures.get(reason) ?? 1), 0)])),
    attemptsPerReconnect: Object.fromEntries([...attempts].sort((a, b) => a[0] - b[0])),
    reconnectMs: quantilesMs(list.flatMap((status) => status.reconnectUs)),
    successfulAttemptMs: quantilesMs(list.flatMap((status) => status.handshakeUs)),
    reconnectsBySecond: bySecond
  }
}

function sum (list: Status[], key: 'open' | 'received' | 'duplicates' | 'gaps' | 'reconnects' | 'refused' | 'malformed'): number {
  return list.reduce((total, status) => total + status[key], 0)
}

/** Polls until `done` holds, or nothing changed for IDLE_MS, or `timeoutMs` passed. */
async function until (loadgens: Peer[], done: (list: Status[]) => boolean, timeoutMs = 300_000, detail = false): Promise<Status[]> {
  const deadline = Date.now() + timeoutMs
  let progress = -1
  let changed = Date.now()
  for (;;) {
    const list = await statuses(loadgens, detail)
    const now = sum(list, 'received') + sum(list, 'open')
    if (now !== progress) {
      progress = now
      changed = Date.now()
    }
    if (done(list) || Date.now() - changed > IDLE_MS || Date.now() > deadline) return list
    await sleep(100)
  }
}

async function arm (loadgens: Peer[], firstSeq = 0, count = 0): Promise<void> {
  await Promise.all(loadgens.map((loadgen) => loadgen.call('scale-arm', { firstSeq, count })))
}

async function latency (loadgens: Peer[]): Promise<{ p50Ms: number, p99Ms: number, count: number }> {
  const merged = new Samples()
  for (const status of await statuses(loadgens, true)) for (const value of status.samples) merged.add(value)
  const { p50, p99, count } = merged.summary()
  return { p50Ms: p50, p99Ms: p99, count }
}

interface Cpu { us: number }
interface RouteCounters { heartbeatSweeps: number, heartbeatPings?: number, heartbeatSweepCpuUs: number }

function routeCounters (servers: Peer[]): Promise<RouteCounters[]> {
  return Promise.all(servers.map((server) => server.call<RouteCounters>('scale-route-stats')))
}

/**
 * The instances' CPU (µs, from each process's own clock, not /proc's 10 ms ticks) over `ms` with
 * nothing published, and the heartbeat sweeps they ran meanwhile: count, CPU, and the sockets they
 * pinged summed over sweeps (counted by the route: a socket whose client sent a frame since the
 * last sweep is not pinged; each instance's sockets × its sweeps from an edge that does not count).
 */
async function idleWindow (servers: Peer[], ms: number): Promise<{ us: number, sweeps: number, sweepUs: number, pinged: number }> {
  const stats = (): Promise<RouteCounters[]> => routeCounters(servers)
  const before = await stats()
  await Promise.all(servers.map((server) => server.call('cpu-start')))
  await sleep(ms)
  const cpus = await Promise.all(servers.map((server) => server.call<Cpu>('cpu')))
  const after = await stats()
  const sockets = await Promise.all(servers.map((server) => server.call<number>('connections')))
  let sweeps = 0
  let sweepUs = 0
  let pinged = 0
  after.forEach((counters, i) => {
    const ran = counters.heartbeatSweeps - before[i].heartbeatSweeps
    sweeps += ran
    sweepUs += counters.heartbeatSweepCpuUs - before[i].heartbeatSweepCpuUs
    pinged += counters.heartbeatPings === undefined ? ran * sockets[i] : counters.heartbeatPings - (before[i].heartbeatPings ?? 0)
  })
  return { us: cpus.reduce((total, cpu) => total + cpu.us, 0), sweeps, sweepUs, pinged }
}

async function openTotal (servers: Peer[]): Promise<number> {
  return (await Promise.all(servers.map((server) => server.call<number>('connections')))).reduce((a, b) => a + b, 0)
}

interface Memory { rss: number, heapUsed: number, heapTotal: number, external: number }

async function memoryTotal (servers: Peer[]): Promise<Memory> {
  const total: Memory = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 }
  for (const server of servers) {
    const usage = await server.call<Memory>('memory')
    for (const key of ['rss', 'heapUsed', 'heapTotal', 'external'] as const) total[key] += usage[key]
  }
  return total
}

interface Cast { delivered: number, lastUs: number, serverUs: number, clientUs: number, sweeps: number, sweepUs: number }

/**
 * One message to every socket through `send`: when the last socket had it (µs after the send), and
 * the CPU it took: the instances' (less any heartbeat sweep that fell in the window, which is no
 * broadcast work) and the load generators'. Waits for all `n` deliveries, or until progress stops.
 */
async function timedBroadcast (servers: Peer[], loadgens: Peer[], n: number, send: () => Promise<unknown>): Promise<Cast> {
  await arm(loadgens)
  const sweepsBefore = await routeCounters(servers)
  const cpuBefore = cpuOf(servers)
  const clientCpuBefore = cpuOf(loadgens)
  const sentAt = nowUs()
  await send()
  const list = await until(loadgens, (statuses) => sum(statuses, 'received') >= n)
  const serverAll = cpuOf(servers) - cpuBefore
  const clientUs = cpuOf(loadgens) - clientCpuBefore
  const sweepsAfter = await routeCounters(servers)
  const sweeps = sweepsAfter.reduce((total, c, i) => total + c.heartbeatSweeps - sweepsBefore[i].heartbeatSweeps, 0)
  const sweepUs = sweepsAfter.reduce((total, c, i) => total + c.heartbeatSweepCpuUs - sweepsBefore[i].heartbeatSweepCpuUs, 0)
  const lastAt = Math.max(...list.map((status) => status.lastReceivedUs))
  return { delivered: sum(list, 'received'), lastUs: lastAt - sentAt, serverUs: Math.max(0, serverAll - sweepUs), clientUs, sweeps, sweepUs }
}

const CAST_TRIES = 3

/**
 * A broadcast measured again (up to CAST_TRIES times) while a heartbeat sweep fell in its window:
 * the sweep's own CPU is left out, but the pongs it brings back are read in the window too, and
 * would be counted as broadcast work (and delay the last socket).
 */
async function withoutSweeps (measure: () => Promise<Cast>): Promise<Cast & { tries: number }> {
  let cast = await measure()
  let tries = 1
  while (cast.sweeps > 0 && tries < CAST_TRIES) {
    cast = await measure()
    tries++
  }
  return { ...cast, tries }
}

export async function scale (hooks: ScaleHooks, params: ScaleParams): Promise<Record<string, unknown>> {
  const n = params.connections
  const { instances, loadgens: generators } = layout(n)
  const redis = process.env.REDIS_URL ? null : await startRedis()
  const redisUrl = process.env.REDIS_URL || redis!.url
  const servers: Peer[] = []
  const loadgens: Peer[] = []
  const figures: Record<string, unknown> = { instances, loadgens: generators, redis: redis === null ? 'REDIS_URL' : 'private redis-server' }
  // The highest 1-minute load average at the phases' ends: the report flags a busy machine with it.
  const loads: number[] = []
  const noteLoad = (): void => {
    loads.push(round(loadavg()[0], 2))
    figures.loadAverageMax = Math.max(...loads)
  }
  try {
    const heartbeatMs = params.heartbeatSeconds * 1000
    // A storm brings each survivor thousands of connects at once: an accept queue of Node's default
    // 511 overflows while the instance is busy, and each dropped connect waits for a SYN retransmit
    // (1 s, then 3 s, 7 s …), a refusal in all but name. The kernel caps it at somaxconn.
    const edgeArgs = ['--redis', redisUrl, '--streams', 'scale', '--heartbeat-interval', String(heartbeatMs), '--listen-backlog', String(LISTEN_BACKLOG)]
    for (let i = 0; i < instances; i++) servers.push(await hooks.spawnEdge(edgeArgs))
    for (let i = 0; i < generators; i++) loadgens.push(await hooks.spawnLoadgen(`scale-loadgen-${i}`))
    figures.fileLimits = [...servers, ...loadgens].map((peer) => raiseFileLimit(peer.child.pid!))
    const ports = servers.map((server) => server.info.port as number)

    // Idle windows span whole heartbeat periods: a ping sweep of every socket runs once per period
    // (the expiry sweep too, at the default 30 s; presence every 5 s), so a shorter window holds
    // zero or one sweep per instance and the figure is biased by where the window falls.
    const periods = Math.max(1, Math.round(params.idleSeconds / params.heartbeatSeconds))
    const idleMs = periods * heartbeatMs
    // The instances' own idle cost (timers, Redis, presence) with no socket: subtracted below.
    const empty = await idleWindow(servers, idleMs)
    // Memory: the instances' RSS after a full GC, and the kernel's TCP buffers, before and after.
    const before = await memoryTotal(servers)
    const kernelBefore = sockstat()
    const slabBefore = socketSlabBytes()
    const began = Date.now()
    const share = Math.ceil(n / generators)
    // In two halves: the second half's growth is what one more connection costs, without the
    // instances' one-time growth (V8's young generation, code) that the first half also pays.
    const connectHalf = (half: 0 | 1): Promise<unknown> => Promise.all(loadgens.map((loadgen, k) => {
      const first = k * share
      const count = Math.max(0, Math.min(share, n - first))
      const firstHalf = Math.floor(count / 2)
      return loadgen.call('scale-connect', {
        ports, first: first + half * firstHalf, count: half === 0 ? firstHalf : count - firstHalf, concurrency: CONNECT_CONCURRENCY, addresses: ADDRESSES
      })
    }))
    await connectHalf(0)
    const middle = await memoryTotal(servers)
    const openHalf = await openTotal(servers)
    await connectHalf(1)
    noteLoad()
    figures.connectSeconds = round((Date.now() - began) / 1000, 1)
    const open = await openTotal(servers)
    const after = await memoryTotal(servers)
    const kernelAfter = sockstat()
    const slabAfter = socketSlabBytes()
    figures.connections = open
    const marginal = (after.rss - middle.rss) / Math.max(1, open - openHalf)
    figures.rssPerConnectionKB = round(marginal / 1024, 2)
    figures.rssPerSubscriptionKB = round(marginal / 2 / 1024, 2)
    figures.rssAveragePerConnectionKB = round((after.rss - before.rss) / n / 1024, 2)
    const perSecondHalf = (key: keyof Memory): number => round((after[key] - middle[key]) / Math.max(1, open - openHalf) / 1024, 2)
    figures.heapPerConnectionKB = perSecondHalf('heapUsed')
    // Where RSS goes besides live objects: heap V8 keeps committed, and memory outside the heap.
    figures.heapCommittedPerConnectionKB = perSecondHalf('heapTotal')
    figures.externalPerConnectionKB = perSecondHalf('external')
    figures.rssTotalMB = round(after.rss / 2 ** 20, 0)
    // Both ends of each loopback connection are on this machine: the kernel figure counts both.
    figures.kernelTcpSocketsPerConnection = round((kernelAfter.inuse - kernelBefore.inuse) / n, 2)
    figures.kernelSocketMemPerConnectionKB = round((kernelAfter.memBytes - kernelBefore.memBytes) / n / 1024, 3)
    figures.kernelSocketSlabPerConnectionKB = slabBefore === null || slabAfter === null ? null : round((slabAfter - slabBefore) / n / 1024, 2)

    noteLoad()
    // Idle: the instances' CPU over whole heartbeat periods with nothing published, less the
    // constant part, per socket per heartbeat cycle: the ping sweep (counted by the route) and the
    // rest (pongs read, the expiry sweep, presence). Normalised by the sweeps that ran, which the
    // window's edges may make one more or less per instance than `periods`.
    const idle = await idleWindow(servers, idleMs)
    const socketCycles = Math.max(1, idle.pinged)
    // On a busy machine the two windows' noise can exceed the difference: never below zero.
    const perSocketUs = Math.max(0, idle.us - empty.us) / socketCycles
    const sweepUs = idle.sweepUs / socketCycles
    const idlePercent = 100 * perSocketUs * n / heartbeatMs / 1000
    figures.idleSeconds = idleMs / 1000
    figures.idleHeartbeatSeconds = params.heartbeatSeconds
    figures.idleSweeps = { expected: periods * instances, ran: idle.sweeps, pings: idle.pinged }
    figures.idleEmptyInstancesCorePercent = round(100 * empty.us / idleMs / 1000, 2)
    figures.idleInstancesCorePercent = round(100 * idle.us / idleMs / 1000, 2)
    figures.idleUsPerSocketCycle = round(perSocketUs, 2)
    figures.idleSweepUsPerSocketCycle = round(sweepUs, 2)
    figures.idleRestUsPerSocketCycle = round(Math.max(0, perSocketUs - sweepUs), 2)
    figures.idleCorePercentPer10k = round(idlePercent * 10_000 / n, 3)
    figures.idleCorePercentPer100k = round(idlePercent * 100_000 / n, 2)

    noteLoad()
    // Broadcast: one message to each room, so one to every socket; a first one unmeasured. Then
    // the floor on the same sockets: each instance writes one pre-framed frame of the same length
    // straight to every socket (no edge code), the clients time it alike. What the edge costs
    // above the floor is ours; the floor itself is the machine's (syscalls, the clients' reads).
    let seq = 0
    const edgeCast = (): Promise<unknown> => servers[0].call('scale-broadcast', { seq: seq++ })
    const floorCast = (): Promise<unknown> => Promise.all(servers.map((server) => server.call('scale-floor')))
    await timedBroadcast(servers, loadgens, n, edgeCast)
    const cast = await withoutSweeps(() => timedBroadcast(servers, loadgens, n, edgeCast))
    await timedBroadcast(servers, loadgens, n, floorCast)
    const floor = await withoutSweeps(() => timedBroadcast(servers, loadgens, n, floorCast))
    figures.broadcastTries = { edge: cast.tries, floor: floor.tries }
    figures.broadcastSweeps = cast.sweeps
    figures.broadcastSweepCpuMs = round(cast.sweepUs / 1000, 1)
    figures.broadcastDelivered = cast.delivered
    figures.broadcastLastMs = round(cast.lastUs / 1000, 1)
    figures.broadcastCpuPerDeliveryUs = round(cast.serverUs / Math.max(1, cast.delivered), 2)
    figures.broadcastCorePercent = round(100 * cast.serverUs / Math.max(1, cast.lastUs) / instances, 1)
    // The load generators read every frame on the same cores: what they took decides the wall time too.
    figures.broadcastClientCpuPerDeliveryUs = round(cast.clientUs / Math.max(1, cast.delivered), 2)
    figures.broadcastCoresBusy = round((cast.serverUs + cast.sweepUs + cast.clientUs) / Math.max(1, cast.lastUs), 2)
    figures.broadcastFloor = {
      delivered: floor.delivered,
      lastMs: round(floor.lastUs / 1000, 1),
      cpuPerDeliveryUs: round(floor.serverUs / Math.max(1, floor.delivered), 2),
      clientCpuPerDeliveryUs: round(floor.clientUs / Math.max(1, floor.delivered), 2),
      coresBusy: round((floor.serverUs + floor.sweepUs + floor.clientUs) / Math.max(1, floor.lastUs), 2),
      // The edge's broadcast against the floor: wall time, and server CPU per delivery.
      timeRatio: round(cast.lastUs / Math.max(1, floor.lastUs), 2),
      cpuRatio: round(cast.serverUs / Math.max(1, floor.serverUs), 2)
    }

    noteLoad()
    // Private: every user gets one message first (so every client has a `since` for the storm), then
    // `privateRate` msg/s to random users.
    await arm(loadgens)
    await servers[1].call('scale-prime', { users: n, seq: seq++ })
    await until(loadgens, (list) => sum(list, 'received') >= n)
    const count = params.privateRate * params.privateSeconds
    await arm(loadgens, 1000, count)
    await servers[1].call('scale-private', { count, rate: params.privateRate, users: n, firstSeq: 1000 })
    const priv = await until(loadgens, (list) => sum(list, 'received') >= count, undefined, true)
    const privFailures = await servers[1].call<Failures>('scale-failures')
    figures.private = { rate: params.privateRate, sent: count, delivered: sum(priv, 'received'), missing: missing(priv), publishFailures: privFailures.count, ...(await latency(loadgens)) }

    noteLoad()
    // Storm: instance 0 is SIGKILLed a second into private publishing from instance 1.
    const stormCount = params.privateRate * params.stormSeconds
    const stormFirst = 1000 + count
    await arm(loadgens, stormFirst, stormCount)
    const publishing = servers[1].call('scale-private', { count: stormCount, rate: params.privateRate, users: n, firstSeq: stormFirst })
    await sleep(1000)
    const victim = servers[0]
    const orphans = await victim.call<number>('connections')
    const tcpBefore = tcpCounters()
    const killedAt = nowUs()
    victim.child.kill('SIGKILL')
    await victim.exited
    const back = await until(loadgens, (list) => sum(list, 'open') >= n && sum(list, 'reconnects') >= orphans, STORM_TIMEOUT_MS)
    const backAt = nowUs()
    const tcpAfter = tcpCounters()
    await publishing
    const failed = await servers[1].call<Failures>('scale-failures')
    const refused = new Set(failed.seqs.map((seq) => seq - stormFirst))
    const storm = await until(loadgens, (list) => missing(list, refused) === 0, undefined, true)
    const perSecond = new Map<number, number>()
    for (const status of storm) for (const [second, shakes] of status.handshakesPerSecond) perSecond.set(second, (perSecond.get(second) ?? 0) + shakes)
    figures.storm = {
      orphans,
      back: sum(back, 'open'),
      recoverySeconds: sum(back, 'open') >= n ? round((backAt - killedAt) / 1e6, 1) : null,
      peakHandshakesPerSecond: Math.max(0, ...perSecond.values()),
      reconnects: sum(storm, 'reconnects'),
      refused: sum(storm, 'refused'),
      published: stormCount,
      lost: missing(storm, refused),
      // Publishes that failed (the publisher was told, as a 503 would say) but reached their user all the same.
      failedButDelivered: failed.seqs.length - [...refused].filter((slot) => storm.every((status) => Buffer.from(status.seen, 'base64')[slot] === 0)).length,
      duplicatesDropped: sum(storm, 'duplicates'),
      gaps: sum(storm, 'gaps'),
      publishFailures: failed.count,
      firstPublishFailure: failed.first,
      malformedFrames: sum(storm, 'malformed'),
      kernelTcp: Object.fromEntries(TCP_COUNTERS.map((name) => [name, tcpAfter[name] - tcpBefore[name]])),
      listenBacklog: Math.min(LISTEN_BACKLOG, somaxconn()),
      ...stormDetail(storm, killedAt)
    }
    noteLoad()
    return figures
  } finally {
    await Promise.all(loadgens.map((loadgen) => loadgen.call('scale-disconnect').catch(() => {})))
    await Promise.all([...loadgens, ...servers].map((peer) => peer.stop()))
    await redis?.stop()
  }
}
