import { randomBytes } from 'node:crypto'
import { Connection } from 'rabbitmq-client'
import type { Peer } from './lib/ipc.js'
import { PRIVATE_STREAM } from './lib/shared.js'
import { round, type Latency } from './lib/stats.js'

// The ingress scenario: RabbitMQ → edge → private sockets, against a bare consumer of the same
// client library; latency at a fixed rate; server CPU per publish through AMQP, HTTP, gRPC and
// gRPC PublishStream, each also as a multiple of HTTP's.

export interface IngressParams { users: number, flood: number, rate: number, seconds: number, cpuRate: number, cpuCount: number, warmup: number }
export type IngressResults = Record<string, Record<string, unknown>>

interface Received { received: number, expected: number, orderErrors: number, short: number, spanMs: number, latency: Latency }
interface Cpu { us: number, failures: number }

export const INGRESS_FULL: IngressParams = { users: 1000, flood: 20_000, rate: 2000, seconds: 10, cpuRate: 1000, cpuCount: 5000, warmup: 500 }
export const INGRESS_QUICK: IngressParams = { users: 10, flood: 200, rate: 500, seconds: 0.2, cpuRate: 500, cpuCount: 50, warmup: 20 }

export interface IngressHooks {
  loadgen: Peer
  spawnEdge (extra: string[]): Promise<Peer>
  spawn (name: string, script: string, args: string[]): Promise<Peer>
  idleMs: number
}

/** Fresh names on the broker, deleted afterwards: the scenario never touches anyone else's queues. */
async function withNames<T> (url: string, run: (names: { exchange: string, queue: string }) => Promise<T>): Promise<T> {
  const id = `notify-bench-${randomBytes(4).toString('hex')}`
  const names = { exchange: `${id}.x`, queue: `${id}.q` }
  try {
    return await run(names)
  } finally {
    const admin = new Connection(url)
    admin.on('error', () => {})
    await admin.queueDelete({ queue: names.queue }).catch(() => {})
    await admin.exchangeDelete({ exchange: names.exchange }).catch(() => {})
    await admin.close()
  }
}

/** The bare consumer's rate over `flood` messages: the ceiling this broker and library allow here. */
async function bare (hooks: IngressHooks, producer: Peer, url: string, p: IngressParams): Promise<Record<string, unknown>> {
  return withNames(url, async ({ exchange, queue }) => {
    const consumer = await hooks.spawn('bare-consumer', 'servers/bare-consumer.js', ['--amqp', url, '--exchange', exchange, '--queue', queue])
    try {
      await consumer.call('arm')
      await producer.call('flood', { via: 'amqp', url, exchange, count: p.flood, users: p.users, firstSeq: 0 })
      const got = await consumer.call<{ consumed: number, spanMs: number, cpuUs: number }>('wait', { expected: p.flood })
      return {
        messagesPerSecond: round(got.consumed / (got.spanMs / 1000), 0),
        cpuPerMessageUs: round(got.cpuUs / got.consumed, 2),
        delivered: got.consumed,
        complete: got.consumed === p.flood
      }
    } finally {
      await consumer.stop()
    }
  })
}

export async function ingress (hooks: IngressHooks, url: string, p: IngressParams): Promise<IngressResults> {
  const { loadgen, idleMs } = hooks
  const producer = await hooks.spawn('producer', 'producer.js', [])
  const results: IngressResults = {}
  try {
    results['bare-consumer'] = await bare(hooks, producer, url, p)
    await withNames(url, async ({ exchange, queue }) => {
      const edge = await hooks.spawnEdge(['--amqp', url, '--exchange', exchange, '--queue', queue])
      try {
        const { grpcPort } = await edge.call<{ grpcPort: number }>('ingress')
        const port = edge.info.port as number
        await loadgen.call('connect', { port, protocol: 'notify', stream: PRIVATE_STREAM, count: p.users, concurrency: 100, addresses: 8 })
        const via = { url, exchange, users: p.users }
        let seq = 0
        const measure = async (send: () => Promise<unknown>, count: number): Promise<[Received, Cpu]> => {
          await loadgen.call('arm')
          await edge.call('memory')
          await edge.call('cpu-start')
          await send()
          const got = await loadgen.call<Received>('wait', { expected: count, perClient: 0, idleMs })
          const cpu = await edge.call<Cpu>('cpu')
          seq += count
          return [got, cpu]
        }
        const complete = (got: Received, cpu: Cpu): boolean => got.received === got.expected && got.orderErrors === 0 && cpu.failures === 0

        // Warm up every path once, so no figure pays for JIT or connection set-up.
        const portOf = (name: string): number => name === 'http' ? port : grpcPort
        for (const name of ['amqp', 'http', 'grpc', 'grpc-stream']) {
          await measure(() => producer.call('flood', { ...via, via: name, port: portOf(name), count: p.warmup, firstSeq: seq }), p.warmup)
        }
        const [flood, floodCpu] = await measure(() => producer.call('flood', { ...via, via: 'amqp', count: p.flood, firstSeq: seq }), p.flood)
        results['amqp-flood'] = {
          messagesPerSecond: round(flood.received / (flood.spanMs / 1000), 0),
          cpuPerMessageUs: round(floodCpu.us / flood.received, 2),
          delivered: flood.received,
          complete: complete(flood, floodCpu)
        }
        const count = Math.round(p.rate * p.seconds)
        const [steady, steadyCpu] = await measure(() => producer.call('steady', { ...via, via: 'amqp', count, rate: p.rate, firstSeq: seq }), count)
        results[`amqp-${p.rate}`] = { p50Ms: steady.latency.p50, p99Ms: steady.latency.p99, delivered: steady.received, complete: complete(steady, steadyCpu) }
        for (const name of ['http', 'grpc', 'grpc-stream', 'amqp']) {
          const [got, cpu] = await measure(() => producer.call('steady', { ...via, via: name, port: portOf(name), count: p.cpuCount, rate: p.cpuRate, firstSeq: seq }), p.cpuCount)
          // Concurrent HTTP and gRPC calls may land out of order: only completeness counts here.
          results[`cpu-${name}`] = { cpuPerPublishUs: round(cpu.us / p.cpuCount, 2), p50Ms: got.latency.p50, p99Ms: got.latency.p99, delivered: got.received, complete: got.received === got.expected && cpu.failures === 0 }
        }
        // Each door's CPU per publish as a multiple of HTTP's (issue 29: gRPC at most 1.0 ×).
        const http = results['cpu-http'].cpuPerPublishUs as number
        for (const name of ['grpc', 'grpc-stream', 'amqp']) results[`cpu-${name}`].overHttp = http > 0 ? round(results[`cpu-${name}`].cpuPerPublishUs as number / http, 2) : null
      } finally {
        await loadgen.call('disconnect')
        await edge.stop()
      }
    })
  } finally {
    await producer.stop()
  }
  return results
}
