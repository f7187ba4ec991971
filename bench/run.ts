import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { argument, Peer, SERVER_NODE_FLAGS } from './lib/ipc.js'
import { environment, loadAverage } from './lib/machine.js'
import { PRIVATE_STREAM, PUBLIC_STREAM } from './lib/shared.js'
import { round, type Latency } from './lib/stats.js'
import { processCpuUs, startCluster, startRedis, type BenchRedis } from './lib/redis.js'
import { report, type Results, type Scenario } from './report.js'
import { ingress, INGRESS_FULL, INGRESS_QUICK } from './ingress.js'
import { pipelines, PIPELINES_FULL, PIPELINES_QUICK } from './pipelines.js'
import { scale as scaleRun } from './scale/scenario.js'

// The bench driver: runs every scenario against every contender, each server in its own
// process, the clients in a separate load-generator process; then prints and saves the figures.

const here = dirname(fileURLToPath(import.meta.url))
// Built into node_modules/.cache/notify-edge-bench/bench/ (bench/build.js): four levels below the project.
const root = join(here, '..', '..', '..', '..')
const flags = process.argv.slice(2)
const quick = flags.includes('--quick')
const profile = flags.includes('--profile')
const outFile = argument('out') ?? join(root, 'bench', 'results', 'latest.json')
const onlyContenders = argument('contenders')?.split(',')
const onlySessions = argument('sessions')?.split(',')

interface Contender {
  id: string
  label: string
  script: string
  args: string[]
  protocol: 'notify' | 'sio'
  /** Measured in these scenario kinds only; every kind when not given. */
  only?: string[]
}

const CONTENDERS: Contender[] = [
  { id: 'edge', label: 'notify-edge', script: 'edge.js', args: [], protocol: 'notify' },
  { id: 'edge-flush0', label: 'notify-edge flushInterval 0', script: 'edge.js', args: ['--flush-interval', '0'], protocol: 'notify', only: ['sustained'] },
  // What tracing costs: every publish and every topic delivery a span, batched to a discarding exporter.
  { id: 'edge-traced', label: 'notify-edge tracing on', script: 'edge.js', args: ['--tracing', 'on'], protocol: 'notify', only: ['fanout'] },
  { id: 'edge-lean', label: 'notify-edge lean emitter', script: 'edge.js', args: ['--emitter', 'lean'], protocol: 'notify', only: ['cross-instance'] },
  // The plain servers' checks and no more (a ticket redeemed once, a verified JWT): no ticket rate limit.
  { id: 'edge-nolimit', label: 'notify-edge no ticket rate limit', script: 'edge.js', args: ['--ticket-rate-limit', 'off'], protocol: 'notify', only: ['handshakes'] },
  { id: 'ws-send', label: 'ws send', script: 'ws.js', args: ['--mode', 'send'], protocol: 'notify' },
  // The plain server's HTTP layer on Fastify, @fastify/jwt and @fastify/websocket: what they cost.
  { id: 'fastify-floor', label: 'ws send on Fastify', script: 'ws.js', args: ['--mode', 'send', '--http', 'fastify'], protocol: 'notify', only: ['handshakes'] },
  { id: 'ws-frame', label: 'ws frame-once', script: 'ws.js', args: ['--mode', 'frame'], protocol: 'notify' },
  { id: 'socketio', label: 'Socket.IO', script: 'socketio.js', args: [], protocol: 'sio' }
]

/**
 * One fresh server process per contender serves a session: `connections` clients subscribe to the
 * public stream; memory is measured on them while idle, then a fan-out burst goes to them, then
 * sustained publishing at each rate. Handshakes are timed apart, on fresh servers (`handshakeRounds`).
 */
interface Session {
  id: string
  connections: number
  memory: boolean
  fanoutMessages: number
  /** Publish rates (msg/s, 0 for as fast as the server answers) and how many messages at each. */
  sustained: Array<{ rate: number, messages: number }>
  handshakes: { count: number, concurrency: number } | null
}
interface CrossInstance { users: number, rate: number, seconds: number }

// Sustained message counts keep what a lagging client can have queued (count × ~170 B per socket)
// far below the slow-consumer limit, and the run short.
const SESSIONS: Session[] = quick
  ? [{ id: 'small', connections: 100, memory: true, fanoutMessages: 10, sustained: [{ rate: 100, messages: 30 }, { rate: 0, messages: 30 }], handshakes: { count: 60, concurrency: 5 } }]
  : [
      {
        id: 'small',
        connections: 2000,
        memory: false,
        fanoutMessages: 200,
        sustained: [{ rate: 100, messages: 300 }, { rate: 1000, messages: 500 }, { rate: 0, messages: 300 }],
        handshakes: { count: 3000, concurrency: 20 }
      },
      { id: 'large', connections: 10000, memory: true, fanoutMessages: 200, sustained: [{ rate: 100, messages: 100 }, { rate: 0, messages: 100 }], handshakes: null }
    ]
// Requests the feeder keeps outstanding: at rate 0 (the maximum), 64 publishers that each send the
// next message once the last was answered (with four, the server sat idle between round trips and
// the rate measured the round trip, not the server); at a fixed rate, a cap on a rate not kept up with.
const MAX_RATE_IN_FLIGHT = 64
const FIXED_RATE_IN_FLIGHT = 64
const CROSS: CrossInstance = quick ? { users: 20, rate: 500, seconds: 0.4 } : { users: 1000, rate: 5000, seconds: 10 }
/**
 * notify-edge's cross-instance run on one Redis, then on a three-master Redis Cluster (sharded
 * pub/sub), at rising publish rates: where each saturates, and Redis's CPU per message and per node.
 */
const SCALE_RATES = quick ? [500] : [2500, 5000, 10000, 20000]
const SCALE: Omit<CrossInstance, 'rate'> = quick ? { users: 20, seconds: 0.4 } : { users: 1000, seconds: 5 }
/** notify-edge on Redis with presence off, then on: handshakes, then `users` online users held idle. */
interface PresenceRun { count: number, concurrency: number, users: number }
const PRESENCE: PresenceRun = quick ? { count: 60, concurrency: 5, users: 100 } : { count: 3000, concurrency: 20, users: 10000 }
const PRESENCE_KEYS = '{notify:presence}'

// Clients spread over several loopback source addresses, so 10,000 sockets never run short of ports.
const ADDRESSES = 8
const CONNECT_CONCURRENCY = 100
// A wait ends early when no delivery arrived for this long; the run then reports what is missing.
const IDLE_MS = quick ? 5000 : 15_000

interface Received {
  received: number
  expected: number
  orderErrors: number
  short: number
  spanMs: number
  latency: Latency
  clientCpuPercent: number
}
/** Server CPU in a measured window, and the major collections in it (see `control.ts`). */
interface Cpu { us: number, failures: number, majorGcs: number }
interface Memory { rss: number, heapUsed: number }
interface Handshakes { completed: number, failures: number, firstError: string | null, perSecond: number, latency: Latency }
type Figures = Record<string, unknown>

function complete (got: Received): boolean {
  return got.received === got.expected && got.orderErrors === 0 && got.short === 0
}

/** Where the figures of each scenario are collected, by scenario id then contender id. */
const scenarios = new Map<string, Scenario>()
function put (id: string, kind: string, params: Record<string, number>, contender: Contender, figures: Figures): void {
  let scenario = scenarios.get(id)
  if (scenario === undefined) {
    scenario = { id, kind, params, results: {} }
    scenarios.set(id, scenario)
  }
  scenario.results[contender.id] = figures
}

// --profile writes a CPU profile of each measured window of every server to bench/results/profiles.
const profileDir = join(root, 'bench', 'results', 'profiles')
function spawnServer (contender: Contender, extra: string[] = []): Promise<Peer> {
  const args = [...contender.args, ...extra]
  if (profile) {
    mkdirSync(join(profileDir, contender.id), { recursive: true })
    args.push('--profile', join(profileDir, contender.id))
  }
  return Peer.spawn(contender.id, join(here, 'servers', contender.script), args, SERVER_NODE_FLAGS)
}

/** Server CPU from here until `measure` settles; the heap is collected first so that earlier garbage is not billed. */
async function serverCpu<T> (servers: Peer[], measure: () => Promise<T>): Promise<[T, ...Cpu[]]> {
  for (const server of servers) await server.call('memory')
  for (const server of servers) await server.call('cpu-start')
  const result = await measure()
  const cpus: Cpu[] = []
  for (const server of servers) cpus.push(await server.call<Cpu>('cpu'))
  return [result, ...cpus]
}

async function fanout (loadgen: Peer, server: Peer, subscribers: number, messages: number): Promise<Figures> {
  const warmup = Math.min(20, messages)
  await loadgen.call('arm')
  await server.call('burst', { count: warmup, firstSeq: 0 })
  await loadgen.call('wait', { expected: warmup * subscribers, perClient: warmup, idleMs: IDLE_MS })

  await loadgen.call('arm')
  const [got, cpu] = await serverCpu([server], async () => {
    await server.call('burst', { count: messages, firstSeq: warmup })
    return loadgen.call<Received>('wait', { expected: messages * subscribers, perClient: messages, idleMs: IDLE_MS })
  })
  return {
    cpuPerDeliveryUs: round(cpu.us / got.received, 3),
    deliveriesPerSecond: round(got.received / (got.spanMs / 1000), 0),
    p50Ms: got.latency.p50,
    p99Ms: got.latency.p99,
    delivered: got.received,
    expected: got.expected,
    complete: complete(got),
    clientCpuPercent: got.clientCpuPercent
  }
}

interface Fed { failures: number, firstError: string | null, ratePerSecond: number }

/** Publishes arrive one per request, from the feeder process, at `rate` (0: the maximum). */
async function sustained (loadgen: Peer, feeder: Peer, server: Peer, subscribers: number, rate: number, messages: number): Promise<Figures> {
  const port = server.info.port
  const inFlight = rate === 0 ? MAX_RATE_IN_FLIGHT : FIXED_RATE_IN_FLIGHT
  const warmup = Math.min(20, messages)
  await feeder.call('open', { port, connections: inFlight })
  await loadgen.call('arm')
  await feeder.call('feed', { port, rate: 0, count: warmup, firstSeq: 0, inFlight })
  await loadgen.call('wait', { expected: warmup * subscribers, perClient: warmup, idleMs: IDLE_MS })

  await loadgen.call('arm')
  let fed: Fed | null = null
  const [got, cpu] = await serverCpu([server], async () => {
    fed = await feeder.call<Fed>('feed', { port, rate, count: messages, firstSeq: warmup, inFlight })
    return loadgen.call<Received>('wait', { expected: messages * subscribers, perClient: messages, idleMs: IDLE_MS })
  })
  await feeder.call('shut')
  const { failures, firstError, ratePerSecond } = fed as unknown as Fed
  return {
    cpuPerDeliveryUs: round(cpu.us / got.received, 3),
    deliveriesPerSecond: round(got.received / (got.spanMs / 1000), 0),
    publishesPerSecond: ratePerSecond,
    p50Ms: got.latency.p50,
    p99Ms: got.latency.p99,
    p999Ms: got.latency.p999,
    delivered: got.received,
    expected: got.expected,
    // Several publishers at once: the server may take request n + 1 before n, so no order check.
    complete: got.received === got.expected && got.short === 0 && failures === 0,
    clientCpuPercent: got.clientCpuPercent,
    ...(firstError !== null ? { firstError } : {})
  }
}

async function handshakes (loadgen: Peer, server: Peer, contender: Contender, count: number, concurrency: number): Promise<Figures> {
  const target = { port: server.info.port, protocol: contender.protocol, stream: PUBLIC_STREAM, concurrency }
  // As many unmeasured first, as in the handshake scenario.
  await loadgen.call('handshakes', { ...target, count })
  await loadgen.call('disconnect')
  const [got, cpu] = await serverCpu([server], () => loadgen.call<Handshakes>('handshakes', { ...target, count }))
  return {
    perSecond: got.perSecond,
    p50Ms: got.latency.p50,
    p99Ms: got.latency.p99,
    cpuPerHandshakeUs: round(cpu.us / got.completed, 0),
    completed: got.completed,
    complete: got.failures === 0,
    ...(got.firstError !== null ? { firstError: got.firstError } : {})
  }
}

// Rounds of the handshake scenario (below).
const HANDSHAKE_ROUNDS = 3

/**
 * The handshake scenario: a fresh server per contender, all alive at once; `count` unmeasured
 * handshakes each, then `HANDSHAKE_ROUNDS` rounds of a share of `count`, the contenders taking
 * turns in an order that rotates every round. Measured one contender after another on the
 * session's own server, the first one's rate came out up to a fifth low (the load generator was
 * still warming up) and two servers running the same handshake code differed by a fifth (each
 * process's heap after its fan-out session). p50 is the median of the rounds', p99 the highest.
 */
async function handshakeRounds (loadgen: Peer, measured: Contender[], { count, concurrency }: { count: number, concurrency: number }): Promise<void> {
  const servers = await Promise.all(measured.map((contender) => spawnServer(contender)))
  const target = (i: number): Record<string, unknown> => ({ port: servers[i].info.port, protocol: measured[i].protocol, stream: PUBLIC_STREAM, concurrency })
  const totals = measured.map(() => ({ completed: 0, seconds: 0, us: 0, majorGcs: 0, failures: 0, firstError: null as string | null, p50: [] as number[], p99: [] as number[] }))
  try {
    for (let i = 0; i < servers.length; i++) await loadgen.call('handshakes', { ...target(i), count })
    await loadgen.call('disconnect')
    const share = Math.ceil(count / HANDSHAKE_ROUNDS)
    for (let lap = 0; lap < HANDSHAKE_ROUNDS; lap++) {
      for (let turn = 0; turn < servers.length; turn++) {
        const i = (turn + lap) % servers.length
        const [got, cpu] = await serverCpu([servers[i]], () => loadgen.call<Handshakes>('handshakes', { ...target(i), count: share }))
        const total = totals[i]
        total.completed += got.completed
        total.seconds += got.completed / got.perSecond
        total.us += cpu.us
        total.majorGcs += cpu.majorGcs
        total.failures += got.failures + cpu.failures
        total.firstError ??= got.firstError
        total.p50.push(got.latency.p50)
        total.p99.push(got.latency.p99)
      }
    }
    measured.forEach((contender, i) => {
      const { completed, seconds, us, majorGcs, failures, firstError, p50, p99 } = totals[i]
      put('handshakes', 'handshakes', { count, concurrency, rounds: HANDSHAKE_ROUNDS }, contender, {
        perSecond: round(completed / seconds, 0),
        p50Ms: p50.sort((a, b) => a - b)[Math.floor(p50.length / 2)],
        p99Ms: Math.max(...p99),
        cpuPerHandshakeUs: round(us / completed, 0),
        majorGcs,
        completed,
        complete: failures === 0 && completed === share * HANDSHAKE_ROUNDS,
        ...(firstError !== null ? { firstError } : {})
      })
    })
  } finally {
    await loadgen.call('disconnect')
    await Promise.all(servers.map((server) => server.stop()))
  }
}

async function runSession (loadgen: Peer, feeder: Peer, contender: Contender, session: Session): Promise<void> {
  const measures = (kind: string): boolean => contender.only?.includes(kind) ?? true
  // A contender measured in none of this session's scenarios is not started for it.
  if (session.connections === 0 || !['memory', 'fanout', 'sustained'].some(measures)) return
  const server = await spawnServer(contender)
  const n = session.connections
  try {
    const before = await server.call<Memory>('memory')
    await loadgen.call('connect', { port: server.info.port, protocol: contender.protocol, stream: PUBLIC_STREAM, count: n, concurrency: CONNECT_CONCURRENCY, addresses: ADDRESSES })
    if (session.memory && n > 0 && measures('memory')) {
      const after = await server.call<Memory>('memory')
      const open = await server.call<number>('connections')
      put('memory', 'memory', { connections: n }, contender, {
        rssPerConnectionKB: round((after.rss - before.rss) / n / 1024, 2),
        heapPerConnectionKB: round((after.heapUsed - before.heapUsed) / n / 1024, 2),
        connections: open,
        complete: open === n
      })
    }
    if (n > 0 && session.fanoutMessages > 0 && measures('fanout')) {
      const params = { subscribers: n, messages: session.fanoutMessages }
      put(`fanout-${n}`, 'fanout', params, contender, await fanout(loadgen, server, n, session.fanoutMessages).catch(failure))
    }
    for (const { rate, messages } of n > 0 && measures('sustained') ? session.sustained : []) {
      const figures = await sustained(loadgen, feeder, server, n, rate, messages).catch(failure)
      const params = { subscribers: n, rate, messages, publishers: rate === 0 ? MAX_RATE_IN_FLIGHT : 1 }
      put(`sustained-${n}-${rate === 0 ? 'max' : rate}`, 'sustained', params, contender, figures)
    }
  } finally {
    await loadgen.call('disconnect')
    await server.stop()
  }
}

/** Two instances on `redis` (one Redis or a cluster); with `redisPids`, Redis's CPU in the window too. */
async function crossInstance (loadgen: Peer, contender: Contender, redis: Pick<BenchRedis, 'serverArgs' | 'pids'>, { users, rate, seconds }: CrossInstance): Promise<Figures> {
  const [publisher, receiver] = await Promise.all([spawnServer(contender, redis.serverArgs), spawnServer(contender, redis.serverArgs)])
  try {
    await loadgen.call('connect', { port: receiver.info.port, protocol: contender.protocol, stream: PRIVATE_STREAM, count: users, concurrency: CONNECT_CONCURRENCY, addresses: ADDRESSES })
    // Two seconds at the rate before measuring: every contender's hot path is compiled by then
    // (at a quarter second, JIT work still fell in the window, more for more code: ~2 µs/message).
    const warmup = Math.round(rate * 2)
    await loadgen.call('arm')
    await publisher.call('rate', { count: warmup, rate, users, firstSeq: 0 })
    await loadgen.call('wait', { expected: warmup, perClient: 0, idleMs: IDLE_MS })

    const count = Math.round(rate * seconds)
    await loadgen.call('arm')
    let publishSeconds = 0
    let redisUs: number[] = []
    const [got, a, b] = await serverCpu([publisher, receiver], async () => {
      const redisBefore = redis.pids.map(processCpuUs)
      const start = process.hrtime.bigint()
      await publisher.call('rate', { count, rate, users, firstSeq: warmup })
      publishSeconds = Number(process.hrtime.bigint() - start) / 1e9
      const received = await loadgen.call<Received>('wait', { expected: count, perClient: 0, idleMs: IDLE_MS })
      redisUs = redis.pids.map((pid, i) => processCpuUs(pid) - redisBefore[i])
      return received
    })
    return {
      p50Ms: got.latency.p50,
      p99Ms: got.latency.p99,
      p999Ms: got.latency.p999,
      cpuPerMessageUs: round((a.us + b.us) / got.received, 2),
      publisherCpuPerMessageUs: round(a.us / count, 2),
      receiverCpuPerMessageUs: round(b.us / count, 2),
      publisherMajorGcs: a.majorGcs,
      receiverMajorGcs: b.majorGcs,
      ratePerSecond: round(count / publishSeconds, 0),
      redisCpuPerMessageUs: round(redisUs.reduce((sum, us) => sum + us, 0) / count, 2),
      redisBusiestNodePercent: round(Math.max(...redisUs) / 1e4 / (got.spanMs / 1000), 1),
      delivered: got.received,
      expected: got.expected,
      complete: complete(got) && a.failures === 0,
      clientCpuPercent: got.clientCpuPercent
    }
  } finally {
    await loadgen.call('disconnect')
    await Promise.all([publisher.stop(), receiver.stop()])
  }
}

async function redisUsedMemory (redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1])
}

/** Users in the presence hashes of every instance: what Redis holds once the edge's writes landed. */
async function presenceUsers (redis: Redis): Promise<number> {
  const keys = await redis.keys(`${PRESENCE_KEYS}:*:u`)
  let users = 0
  for (const key of keys) users += await redis.hlen(key)
  return users
}

/** Resolves once `count()` is `expected`, or after 30 s (the figures then say what was reached). */
async function settled (count: () => Promise<number>, expected: number): Promise<void> {
  const deadline = Date.now() + 30_000
  while (await count() !== expected && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
}

/** Handshakes, then Redis memory per online user, on one edge process with presence `on` or off. */
async function presenceRun (loadgen: Peer, redisUrl: string, on: boolean, { count, concurrency, users }: PresenceRun): Promise<Figures> {
  const edge = CONTENDERS[0]
  const server = await spawnServer(edge, ['--redis', redisUrl, ...(on ? [] : ['--presence', 'off'])])
  const redis = new Redis(redisUrl)
  try {
    const shaken = await handshakes(loadgen, server, edge, count, concurrency)
    await loadgen.call('disconnect')
    // Sockets leave in the edge's next ticks: wait until Redis holds nobody, then measure from there.
    if (on) await settled(() => presenceUsers(redis), 0)
    const before = await redisUsedMemory(redis)
    await loadgen.call('connect', { port: server.info.port, protocol: 'notify', stream: PUBLIC_STREAM, count: users, concurrency: CONNECT_CONCURRENCY, addresses: ADDRESSES })
    if (on) await settled(() => presenceUsers(redis), users)
    const online = on ? await presenceUsers(redis) : users
    return {
      ...shaken,
      redisBytesPerOnlineUser: round((await redisUsedMemory(redis) - before) / users, 0),
      online,
      complete: shaken.complete === true && online === users
    }
  } finally {
    redis.disconnect()
    await loadgen.call('disconnect')
    await server.stop()
  }
}

function failure (err: Error): Figures {
  return { error: err.message.split('\n')[0] }
}

async function timed (label: string, run: () => Promise<void>): Promise<void> {
  process.stderr.write(`bench: ${label} … `)
  const began = Date.now()
  await run()
  process.stderr.write(`${((Date.now() - began) / 1000).toFixed(1)} s\n`)
}

// --flush-interval N runs the `edge` contender with that flushInterval (to choose the default).
const edgeFlushInterval = argument('flush-interval')
const busFlushInterval = argument('bus-flush-interval')
const contenders = CONTENDERS.filter((c) => onlyContenders?.includes(c.id) ?? true)
  .map((c) => c.id === 'edge' && edgeFlushInterval !== undefined
    ? { ...c, label: `${c.label} flushInterval ${edgeFlushInterval}`, args: ['--flush-interval', edgeFlushInterval] }
    : c)
  // --bus-flush-interval N runs every notify-edge contender with that bus.flushInterval (to choose the default).
  .map((c) => c.script === 'edge.js' && busFlushInterval !== undefined
    ? { ...c, label: `${c.label} bus flushInterval ${busFlushInterval}`, args: [...c.args, '--bus-flush-interval', busFlushInterval] }
    : c)
// --fanout 2000x200, --sustained 2000 (the rates of a full run at that size) and/or --handshakes 1000
// replace the sessions with one of that size (for profiling).
const customFanout = /^(\d+)x(\d+)$/.exec(argument('fanout') ?? '') ?? [0, 0, 0]
const customSustained = /^(\d+)(?:x(\d+))?$/.exec(argument('sustained') ?? '') ?? [0, 0, 0]
const customHandshakes = Number(argument('handshakes') ?? 0)
const custom = customFanout[1] !== 0 || customSustained[1] !== 0 || customHandshakes > 0
const sessions = custom
  ? [{
      id: 'custom',
      connections: Math.max(Number(customFanout[1]), Number(customSustained[1])),
      memory: true,
      fanoutMessages: Number(customFanout[2]),
      sustained: customSustained[1] === 0
        ? []
        : (SESSIONS.find((s) => s.connections === Number(customSustained[1]))?.sustained ?? SESSIONS[0].sustained)
            .map(({ rate, messages }) => ({ rate, messages: Number(customSustained[2] ?? messages) })),
      handshakes: customHandshakes > 0 ? { count: customHandshakes, concurrency: 20 } : null
    }]
  : SESSIONS.filter((s) => onlySessions?.includes(s.id) ?? true)
const cross = !custom && (onlySessions?.includes('cross') ?? true)
const ingressWanted = !custom && (onlySessions?.includes('ingress') ?? true) && (onlyContenders?.includes('edge') ?? true)
const amqpUrl = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672'
// The outbox and JetStream pipelines: only when asked for (`--sessions pipelines`), as they need PostgreSQL and NATS.
const pipelinesWanted = !custom && (onlySessions?.includes('pipelines') ?? false) && (onlyContenders?.includes('edge') ?? true)
const presence = !custom && (onlySessions?.includes('presence') ?? true) && contenders.some((c) => c.id === 'edge')
// Not in --quick runs unless asked for: a cluster takes seconds to start.
const scale = !custom && (onlySessions?.includes('redis-scale') ?? !quick) && contenders.some((c) => c.id === 'edge')
// The 100,000-connection scenario runs only when asked for (--sessions scale); --scale-connections N runs it smaller.
const scaleWanted = !custom && (onlySessions?.includes('scale') ?? false)
const SCALE_RUN = {
  connections: Number(argument('scale-connections') ?? 100_000),
  idleSeconds: Number(argument('scale-idle-seconds') ?? 30),
  // The instances' WebSocket heartbeat: the route's default unless shortened (the smoke test's tiny run).
  heartbeatSeconds: Number(argument('scale-heartbeat-seconds') ?? 30),
  privateRate: 1000,
  privateSeconds: Number(argument('scale-private-seconds') ?? 10),
  stormSeconds: Number(argument('scale-storm-seconds') ?? 30)
}
const startedAt = new Date()
const results: Results = {
  version: 1,
  quick,
  startedAt: startedAt.toISOString(),
  durationSeconds: 0,
  environment: environment(root, ['fastify', 'ws', 'socket.io', '@socket.io/redis-adapter', 'mqemitter-redis', 'ioredis', 'rabbitmq-client', '@grpc/grpc-js']),
  contenders: contenders.map(({ id, label }) => ({ id, label })),
  scenarios: []
}

const loadgen = await Peer.spawn('loadgen', join(here, 'loadgen.js'), [], ['--max-old-space-size=4096'])
const feeder = await Peer.spawn('feeder', join(here, 'feeder.js'))
try {
  for (const session of sessions) {
    for (const contender of contenders) {
      await timed(`${session.connections} connections × ${contender.label}`, () => runSession(loadgen, feeder, contender, session))
    }
  }
  const shaking = sessions.find((session) => session.handshakes !== null)?.handshakes
  const shakers = contenders.filter((c) => c.only?.includes('handshakes') ?? true)
  if (shaking != null && shakers.length > 0) {
    await timed(`handshakes × ${shakers.length} contenders in ${HANDSHAKE_ROUNDS} rounds`, () =>
      handshakeRounds(loadgen, shakers, shaking).catch((err: Error) => { for (const c of shakers) put('handshakes', 'handshakes', { ...shaking }, c, failure(err)) }))
  }
  if (presence) {
    const redis = await startRedis()
    try {
      const edge = CONTENDERS[0]
      for (const on of [false, true]) {
        await timed(`presence ${on ? 'on' : 'off'} × ${edge.label}`, async () => {
          const scenario = `presence-${on ? 'on' : 'off'}`
          put(scenario, 'presence', { ...PRESENCE, on: on ? 1 : 0 }, edge, await presenceRun(loadgen, redis.url, on, PRESENCE).catch(failure))
        })
      }
    } finally {
      await redis.stop()
    }
  }
  if (cross) {
    const redis = await startRedis()
    try {
      for (const contender of contenders.filter((c) => c.only?.includes('cross-instance') ?? true)) {
        await timed(`cross-instance × ${contender.label}`, async () => {
          put('cross-instance', 'cross-instance', { ...CROSS }, contender, await crossInstance(loadgen, contender, redis, CROSS).catch(failure))
        })
      }
    } finally {
      await redis.stop()
    }
  }
  if (ingressWanted) {
    const params = quick ? INGRESS_QUICK : INGRESS_FULL
    const edge = CONTENDERS[0]
    await timed('ingress (RabbitMQ, HTTP, gRPC) × notify-edge', async () => {
      const hooks = {
        loadgen,
        idleMs: IDLE_MS,
        spawnEdge: (extra: string[]) => spawnServer(edge, extra),
        spawn: (name: string, script: string, args: string[]) => Peer.spawn(name, join(here, script), args)
      }
      results.ingress = { params: { ...params }, results: await ingress(hooks, amqpUrl, params).catch((err: Error) => ({ run: failure(err) })) }
    })
  }
  if (pipelinesWanted) {
    // --outbox-rows-per-commit N: the outbox producer's notifications per transaction (bench/pipelines.ts).
    const rowsPerCommit = Number(argument('outbox-rows-per-commit') ?? PIPELINES_FULL.rowsPerCommit)
    if (!Number.isInteger(rowsPerCommit) || rowsPerCommit < 1) throw new Error('--outbox-rows-per-commit must be a positive integer')
    const params = { ...(quick ? PIPELINES_QUICK : PIPELINES_FULL), rowsPerCommit }
    await timed('pipelines (PostgreSQL outbox, NATS JetStream) × notify-edge', async () => {
      const hooks = {
        loadgen,
        idleMs: IDLE_MS,
        spawnEdge: (extra: string[]) => spawnServer(CONTENDERS[0], extra),
        spawn: (name: string, script: string, args: string[]) => Peer.spawn(name, join(here, script), args)
      }
      const urls = { database: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test', nats: process.env.NATS_URL || 'nats://127.0.0.1:4222' }
      results.pipelines = { params: { ...params }, results: await pipelines(hooks, urls, params).catch((err: Error) => ({ run: failure(err) })) }
    })
  }
  if (scale) {
    for (const [masters, start] of [[1, startRedis], [3, startCluster]] as const) {
      const redis = await start()
      try {
        for (const rate of SCALE_RATES) {
          await timed(`redis-scale × ${masters === 1 ? 'one Redis' : `${masters}-master cluster`} at ${rate} msg/s`, async () => {
            put(`redis-scale-${masters}-${rate}`, 'redis-scale', { masters, rate, ...SCALE }, CONTENDERS[0], await crossInstance(loadgen, CONTENDERS[0], redis, { rate, ...SCALE }).catch(failure))
          })
        }
      } finally {
        await redis.stop()
      }
    }
  }
  if (scaleWanted) {
    await timed(`scale × ${SCALE_RUN.connections} connections`, async () => {
      const hooks = {
        spawnEdge: (extra: string[]) => spawnServer(CONTENDERS[0], extra),
        spawnLoadgen: (name: string) => Peer.spawn(name, join(here, 'loadgen.js'), [], ['--max-old-space-size=4096'])
      }
      results.scale = await scaleRun(hooks, SCALE_RUN).catch(failure)
    })
  }
} finally {
  await Promise.all([loadgen.stop(), feeder.stop()])
}

const ORDER = ['fanout', 'sustained', 'memory', 'cross-instance', 'handshakes', 'presence', 'redis-scale']
results.scenarios = [...scenarios.values()].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind))
results.durationSeconds = round((Date.now() - startedAt.getTime()) / 1000, 1)
results.environment.loadAverageAfter = loadAverage()
process.stdout.write(report(results))
mkdirSync(dirname(outFile), { recursive: true })
writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`)
process.stderr.write(`bench: wrote ${relative(process.cwd(), outFile)}\n`)
