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
// The outbox's producer commits `rowsPerCommit` notifications a transaction (bench/producer.ts);
// its latency is commit to socket: each row's `t` is taken after BEGIN, just before the INSERT.

/**
 * `rowsPerCommit`: the outbox producer's notifications per transaction. Every committing
 * transaction that notifies waits its turn on PostgreSQL's notification queue lock through its
 * WAL flush, so commits a second are bounded by the disk (1,600 to 1,900 here): one row per commit
 * measures that bound, not the relay. 10, an order notifying its parties, leaves the 5,000 rows a
 * second asked at 500 commits a second; the flood's one-row-per-commit figure stays beside it.
 */
export interface PipelineParams { users: number, flood: number, rate: number, seconds: number, rowsPerCommit: number }
export type PipelineResults = Record<string, Record<string, unknown>>

interface Received { received: number, expected: number, orderErrors: number, spanMs: number, latency: Latency }

export const PIPELINES_FULL: PipelineParams = { users: 1000, flood: 10_000, rate: 5000, seconds: 5, rowsPerCommit: 10 }
export const PIPELINES_QUICK: PipelineParams = { users: 10, flood: 200, rate: 200, seconds: 0.5, rowsPerCommit: 10 }

/** What the producer answers for a flood or a steady run (bench/producer.ts). */
interface Sent { rowsPerCommit: number, rowsPerSecond: number, commitsPerSecond: number, lagP99Ms?: number }

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
  const outbox = pipeline.via.via === 'outbox'
  const bare = await hooks.spawn('bare', pipeline.bareScript, pipeline.bareArgs)
  try {
    // Warmed as the edge is below (a first flood, not measured): a cold consumer's first
    // messages run unoptimized code, which the edge's figure does not count either.
    const warm = Math.min(p.flood, 500)
    await bare.call('arm')
    await producer.call('flood', { ...pipeline.via, count: warm, users: p.users, firstSeq: 0, rowsPerCommit: p.rowsPerCommit })
    await bare.call('wait', { expected: warm })
    await bare.call('arm')
    const sent = await producer.call<Sent>('flood', { ...pipeline.via, count: p.flood, users: p.users, firstSeq: warm, rowsPerCommit: p.rowsPerCommit })
    const got = await bare.call<{ consumed: number, spanMs: number, cpuUs: number }>('wait', { expected: p.flood })
    out.bare = { messagesPerSecond: round(got.consumed / (got.spanMs / 1000), 0), cpuPerMessageUs: round(got.cpuUs / got.consumed, 2), delivered: got.consumed }
    if (outbox) out.producer = { rowsPerCommit: p.rowsPerCommit, 'bare-flood': sent }
  } finally {
    await bare.stop()
  }
  const edge = await hooks.spawnEdge(pipeline.edgeArgs)
  try {
    await edge.call('ingress')
    await hooks.loadgen.call('connect', { port: edge.info.port as number, protocol: 'notify', stream: PRIVATE_STREAM, count: p.users, concurrency: 100, addresses: 8 })
    const via = { ...edgeVia(pipeline), users: p.users, rowsPerCommit: p.rowsPerCommit }
    let seq = 0
    const measure = async (call: string, count: number, extra: Record<string, unknown> = {}): Promise<Received & { sent: Sent, cpuUs: number }> => {
      await hooks.loadgen.call('arm')
      await edge.call('cpu-start')
      const sent = await producer.call<Sent>(call, { ...via, ...extra, count, firstSeq: seq })
      seq += count
      const received = await hooks.loadgen.call<Received>('wait', { expected: count, perClient: 0, idleMs: hooks.idleMs })
      return { ...received, sent, cpuUs: (await edge.call<{ us: number }>('cpu')).us }
    }
    // Outbox rows inserted by concurrent transactions are published in commit order, which need
    // not be the producer's sequence: there only completeness counts (test/outbox*.test.ts check the order).
    const complete = (got: Received): boolean => got.received === got.expected && (outbox || got.orderErrors === 0)
    await measure('flood', Math.min(p.flood, 500))
    const flood = await measure('flood', p.flood)
    // The edge's CPU per message: its relay (or consumer) and the delivery to the sockets.
    out.edge = { messagesPerSecond: round(flood.received / (flood.spanMs / 1000), 0), cpuPerMessageUs: round(flood.cpuUs / flood.received, 2), delivered: flood.received, complete: complete(flood) }
    out.edgeOverBare = round((out.edge as { messagesPerSecond: number }).messagesPerSecond / (out.bare as { messagesPerSecond: number }).messagesPerSecond, 2)
    const count = Math.round(p.rate * p.seconds)
    const steady = await measure('steady', count, { rate: p.rate })
    out[`edge-${p.rate}`] = { p50Ms: steady.latency.p50, p99Ms: steady.latency.p99, delivered: steady.received, complete: complete(steady) }
    if (outbox) {
      Object.assign(out.producer as object, { 'edge-flood': flood.sent, [`edge-${p.rate}`]: steady.sent })
      // The commit-bound figure: one notification per transaction, as the producer can commit them.
      const single = await measure('flood', p.flood, { rowsPerCommit: 1 })
      out['edge-1-per-commit'] = { messagesPerSecond: round(single.received / (single.spanMs / 1000), 0), commitsPerSecond: single.sent.commitsPerSecond, delivered: single.received, complete: complete(single) }
    }
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
