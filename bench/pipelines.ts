import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { outboxMigration } from '../plugins/index.js'
import type { Peer } from './lib/ipc.js'
import { PRIVATE_STREAM } from './lib/shared.js'
import { round, type Latency } from './lib/stats.js'

// The pipelines scenario: a PostgreSQL outbox → edge → private sockets, and NATS JetStream → edge
// → private sockets, each beside its floor in the same run: a bare consumer of the same client
// library that only parses and acknowledges (JetStream), or only reads and marks rows (outbox).
// The outbox's latency is commit to socket: each row's `t` is taken just before its INSERT commits.

export interface PipelineParams { users: number, flood: number, rate: number, seconds: number }
export type PipelineResults = Record<string, Record<string, unknown>>

interface Received { received: number, expected: number, orderErrors: number, spanMs: number, latency: Latency }

export const PIPELINES_FULL: PipelineParams = { users: 1000, flood: 10_000, rate: 5000, seconds: 5 }
export const PIPELINES_QUICK: PipelineParams = { users: 10, flood: 200, rate: 200, seconds: 0.5 }

export interface PipelineHooks {
  loadgen: Peer
  spawnEdge (extra: string[]): Promise<Peer>
  spawn (name: string, script: string, args: string[]): Promise<Peer>
  idleMs: number
}

interface Pipeline {
  /** Producer arguments (`via` and its target). */
  via: Record<string, unknown>
  bareArgs: string[]
  bareScript: string
  edgeArgs: string[]
  cleanup (): Promise<void>
}

async function outboxPipeline (database: string): Promise<Pipeline> {
  const schema = `bench_${randomBytes(4).toString('hex')}`
  const pool = new pg.Pool({ connectionString: database, max: 1 })
  const tables = { bare: `${schema}.bare_outbox`, edge: `${schema}.edge_outbox` }
  await pool.query(`CREATE SCHEMA ${schema}`)
  for (const table of Object.values(tables)) await pool.query(outboxMigration(table))
  return {
    via: { via: 'outbox', url: database, table: tables.bare },
    bareScript: 'servers/bare-outbox.js',
    bareArgs: ['--database', database, '--table', tables.bare],
    edgeArgs: ['--outbox', database, '--outbox-table', tables.edge],
    async cleanup () {
      await pool.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => {})
      await pool.end()
    }
  }
}

async function jetStreamPipeline (url: string): Promise<Pipeline> {
  const id = randomBytes(4).toString('hex')
  const names = { bare: { stream: `bench-${id}-bare`, prefix: `bench${id}bare` }, edge: { stream: `bench-${id}-edge`, prefix: `bench${id}edge` } }
  return {
    via: { via: 'nats', url, prefix: names.bare.prefix },
    bareScript: 'servers/bare-jetstream.js',
    bareArgs: ['--nats', url, '--stream', names.bare.stream, '--consumer', 'bare', '--prefix', names.bare.prefix],
    edgeArgs: ['--nats', url, '--nats-stream', names.edge.stream, '--nats-consumer', 'edge', '--nats-prefix', names.edge.prefix],
    async cleanup () {
      const nc = await connect({ servers: url })
      const jsm = await jetstreamManager(nc)
      for (const { stream } of Object.values(names)) await jsm.streams.delete(stream).catch(() => {})
      await nc.close()
    }
  }
}

/** The edge's producer arguments: the bare ones, pointed at the edge's table or subjects. */
function edgeVia (pipeline: Pipeline): Record<string, unknown> {
  const args = pipeline.edgeArgs
  const value = (flag: string): string => args[args.indexOf(flag) + 1]
  return pipeline.via.via === 'outbox' ? { ...pipeline.via, table: value('--outbox-table') } : { ...pipeline.via, prefix: value('--nats-prefix') }
}

async function run (hooks: PipelineHooks, producer: Peer, pipeline: Pipeline, p: PipelineParams): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {}
  const bare = await hooks.spawn('bare', pipeline.bareScript, pipeline.bareArgs)
  try {
    // Warmed as the edge is below (a first flood, not measured): a cold consumer's first
    // messages run unoptimized code, which the edge's figure does not count either.
    const warm = Math.min(p.flood, 500)
    await bare.call('arm')
    await producer.call('flood', { ...pipeline.via, count: warm, users: p.users, firstSeq: 0 })
    await bare.call('wait', { expected: warm })
    await bare.call('arm')
    await producer.call('flood', { ...pipeline.via, count: p.flood, users: p.users, firstSeq: warm })
    const got = await bare.call<{ consumed: number, spanMs: number, cpuUs: number }>('wait', { expected: p.flood })
    out.bare = { messagesPerSecond: round(got.consumed / (got.spanMs / 1000), 0), cpuPerMessageUs: round(got.cpuUs / got.consumed, 2), delivered: got.consumed }
  } finally {
    await bare.stop()
  }
  const edge = await hooks.spawnEdge(pipeline.edgeArgs)
  try {
    await edge.call('ingress')
    await hooks.loadgen.call('connect', { port: edge.info.port as number, protocol: 'notify', stream: PRIVATE_STREAM, count: p.users, concurrency: 100, addresses: 8 })
    const via = { ...edgeVia(pipeline), users: p.users }
    let seq = 0
    const measure = async (call: string, count: number, extra: Record<string, unknown> = {}): Promise<Received> => {
      await hooks.loadgen.call('arm')
      await producer.call(call, { ...via, ...extra, count, firstSeq: seq })
      seq += count
      return await hooks.loadgen.call<Received>('wait', { expected: count, perClient: 0, idleMs: hooks.idleMs })
    }
    await measure('flood', Math.min(p.flood, 500))
    // The edge's CPU over the measured flood: load-independent, beside the bare consumer's. It
    // includes what the bare consumer never does: the publish, and a write to a socket per message.
    await edge.call('memory')
    await edge.call('cpu-start')
    const flood = await measure('flood', p.flood)
    const cpu = await edge.call<{ us: number }>('cpu')
    // Outbox rows inserted by concurrent transactions are published in commit order, which need
    // not be the producer's sequence: there only completeness counts (test/outbox*.test.ts check the order).
    const ordered = pipeline.via.via !== 'outbox'
    out.edge = { messagesPerSecond: round(flood.received / (flood.spanMs / 1000), 0), cpuPerMessageUs: round(cpu.us / p.flood, 2), delivered: flood.received, complete: flood.received === flood.expected && (!ordered || flood.orderErrors === 0) }
    out.edgeOverBare = round((out.edge as { messagesPerSecond: number }).messagesPerSecond / (out.bare as { messagesPerSecond: number }).messagesPerSecond, 2)
    const count = Math.round(p.rate * p.seconds)
    const steady = await measure('steady', count, { rate: p.rate })
    out[`edge-${p.rate}`] = { p50Ms: steady.latency.p50, p99Ms: steady.latency.p99, delivered: steady.received, complete: steady.received === steady.expected && (!ordered || steady.orderErrors === 0) }
  } finally {
    await hooks.loadgen.call('disconnect')
    await edge.stop()
  }
  return out
}

export async function pipelines (hooks: PipelineHooks, urls: { database: string, nats: string }, p: PipelineParams): Promise<PipelineResults> {
  const producer = await hooks.spawn('producer', 'producer.js', [])
  const results: PipelineResults = {}
  try {
    for (const [name, make] of [['outbox', () => outboxPipeline(urls.database)], ['jetstream', () => jetStreamPipeline(urls.nats)]] as const) {
      const pipeline = await make()
      try {
        results[name] = await run(hooks, producer, pipeline, p)
      } catch (err) {
        results[name] = { error: (err as Error).message }
      } finally {
        await pipeline.cleanup()
      }
    }
  } finally {
    await producer.stop()
  }
  return results
}
