import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { Redis } from 'ioredis'
import { argument, Peer, SERVER_NODE_FLAGS } from './lib/ipc.js'
import { PRIVATE_STREAM } from './lib/shared.js'
import { round } from './lib/stats.js'

// A load-independent probe of the pipelines scenario's JetStream side: the CPU each process
// spends per message (process.cpuUsage over the flood), the bare consumer's and the edge's, with
// the edge's clients connected (`--clients`, 0 for none: the ingress alone). Run with
// `node bench/build.js && node node_modules/.cache/notify-edge-bench/bench/jetstream-probe.js`.
// --redis <url> runs the edge on Redis (bus and idempotency keys there; count its commands with
// INFO commandstats on a private redis-server); --history keeps the private stream's history.
// --profile <dir> writes the edge's measured windows as .cpuprofile files. --base <dir> (another
// checkout's transpiled bench) runs its edge too, rounds alternating, so that the two compare
// over the same stretch of a busy machine.

const here = dirname(fileURLToPath(import.meta.url))
const nats = argument('nats') ?? 'nats://127.0.0.1:4222'
const clients = Number(argument('clients') ?? 1000)
const users = Number(argument('users') ?? Math.max(clients, 1000))
const count = Number(argument('count') ?? 10_000)
const rounds = Number(argument('rounds') ?? 3)
const redis = argument('redis')
const profile = argument('profile')
const history = process.argv.includes('--history')
const base = argument('base')

const id = randomBytes(4).toString('hex')
const names = {
  bare: { stream: `probe-${id}-bare`, prefix: `probe${id}bare` },
  edge: { stream: `probe-${id}-edge`, prefix: `probe${id}edge` },
  base: { stream: `probe-${id}-base`, prefix: `probe${id}base` }
}
const producer = await Peer.spawn('producer', join(here, 'producer.js'))
const loadgen = await Peer.spawn('loadgen', join(here, 'loadgen.js'), [], ['--max-old-space-size=4096'])
let seq = 0
// A private redis-server is best: its command counts are then the edge's alone.
const stats = redis === undefined ? null : new Redis(redis)

/** Redis's own CPU so far (INFO cpu, main thread and the others), in µs. */
function redisCpuUs (info: string): number {
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0)
  return (field('used_cpu_sys') + field('used_cpu_user')) * 1e6
}

/** `calls` of each command in INFO commandstats, per message. */
function commandsPerMessage (info: string, messages: number): string {
  const counts = [...info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)]
    .map(([, name, calls, usec]) => [name, Number(calls), Number(usec)] as const).filter(([, calls]) => calls >= messages / 100)
  const total = counts.reduce((sum, [, calls]) => sum + calls, 0)
  // usec: Redis's time in the command (a script's includes the commands it calls).
  return `${round(total / messages, 2)} (${counts.map(([name, calls, usec]) => `${name} ${round(calls / messages, 2)} at ${round(usec / calls, 2)} µs`).join(', ')})`
}

try {
  const bare = await Peer.spawn('bare', join(here, 'servers', 'bare-jetstream.js'), ['--nats', nats, '--stream', names.bare.stream, '--consumer', 'bare', '--prefix', names.bare.prefix], SERVER_NODE_FLAGS)
  try {
    for (let r = 0; r < rounds; r++) {
      await bare.call('arm')
      await producer.call('flood', { via: 'nats', url: nats, prefix: names.bare.prefix, count, users, firstSeq: seq })
      seq += count
      const got = await bare.call<{ consumed: number, cpuUs: number }>('wait', { expected: count })
      console.log(`bare round ${r}: ${round(got.cpuUs / got.consumed, 2)} µs CPU per message`)
    }
  } finally {
    await bare.stop()
  }

  const edges: Array<{ label: string, server: Peer, prefix: string }> = []
  try {
    for (const [label, dir] of [['edge', here], ...(base === undefined ? [] : [['base', join(base, 'bench')]])] as const) {
      const { stream, prefix } = label === 'edge' ? names.edge : names.base
      const extra = ['--nats', nats, '--nats-stream', stream, '--nats-consumer', 'edge', '--nats-prefix', prefix]
      if (redis !== undefined) extra.push('--redis', redis)
      if (history) extra.push('--history', 'on')
      if (profile !== undefined) {
        mkdirSync(join(profile, label), { recursive: true })
        extra.push('--profile', join(profile, label))
      }
      const server = await Peer.spawn(label, join(dir, 'servers', 'edge.js'), extra, SERVER_NODE_FLAGS)
      edges.push({ label, server, prefix })
      await server.call('ingress')
    }
    const flood = async (edge: Peer, prefix: string, n: number): Promise<void> => {
      const before = await edge.call<{ acked: number }>('jetstream-stats')
      await loadgen.call('arm')
      await producer.call('flood', { via: 'nats', url: nats, prefix, count: n, users, firstSeq: seq })
      seq += n
      while ((await edge.call<{ acked: number }>('jetstream-stats')).acked < before.acked + n) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    for (const { server, prefix } of edges) {
      if (clients > 0) await loadgen.call('connect', { port: server.info.port as number, protocol: 'notify', stream: PRIVATE_STREAM, count: clients, concurrency: 100, addresses: 8 })
      await flood(server, prefix, Math.min(count, 500))
      if (clients > 0) await loadgen.call('disconnect')
    }
    for (let r = 0; r < rounds; r++) {
      for (const { label, server, prefix } of edges) {
        if (clients > 0) await loadgen.call('connect', { port: server.info.port as number, protocol: 'notify', stream: PRIVATE_STREAM, count: clients, concurrency: 100, addresses: 8 })
        await server.call('memory')
        await stats?.call('config', 'resetstat')
        const redisBefore = stats === null ? 0 : redisCpuUs(await stats.info('cpu'))
        await server.call('cpu-start')
        await flood(server, prefix, count)
        const { us } = await server.call<{ us: number }>('cpu')
        if (stats !== null) {
          const redisUs = redisCpuUs(await stats.info('cpu')) - redisBefore
          console.log(`${label} round ${r}: Redis ${round(redisUs / count, 2)} µs CPU per message; commands per message: ${commandsPerMessage(await stats.info('commandstats'), count)}`)
        }
        const delivered = clients > 0 ? (await loadgen.call<{ received: number }>('wait', { expected: Math.round(count * Math.min(clients, users) / users), perClient: 0, idleMs: 1000 })).received : 0
        if (clients > 0) await loadgen.call('disconnect')
        console.log(`${label} round ${r}: ${round(us / count, 2)} µs CPU per message, ${delivered} delivered to ${clients} clients`)
      }
    }
  } finally {
    for (const { server } of edges) await server.stop()
  }
} finally {
  await producer.stop()
  await loadgen.stop()
  stats?.disconnect()
  const nc = await connect({ servers: nats })
  const jsm = await jetstreamManager(nc)
  for (const { stream } of Object.values(names)) await jsm.streams.delete(stream).catch(() => {})
  await nc.close()
}
