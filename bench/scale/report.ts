import { BUSY_LOAD, busy } from '../lib/machine.js'
import type { Results, TargetResult } from '../report.js'

// The scale scenario's figures as text, judged against issue 31's targets. A missed target names
// the resource that ran out, as far as the run can tell: memory for the RSS target; otherwise CPU
// when the machine's load went above its cores (or above 1.5: probably CPU), else the edge's own
// work, with the part of it the run measured (the heartbeat's share, the writes).

type Figures = Record<string, any>
export type ScaleTarget = TargetResult & { resource?: string }

/** The highest 1-minute load average seen: before, after, and at each phase of the run. */
function peakLoad (env: Results['environment'], f: Figures = {}): number {
  return Math.max(env.loadAverageBefore[0] ?? 0, env.loadAverageAfter[0] ?? 0, f.loadAverageMax ?? 0)
}

function cpuVerdict (env: Results['environment'], f: Figures, what: string): string {
  const load = peakLoad(env, f)
  if (load > env.cores) return `CPU: load average ${load} on ${env.cores} cores, the instances and load generators shared what was left (${what})`
  if (load > BUSY_LOAD) return `CPU, probably: load average ${load} (above ${BUSY_LOAD}) on ${env.cores} cores (${what})`
  return `the edge's own CPU (${what}); the machine had cores to spare`
}

export function scaleTargets (f: Figures, env: Results['environment']): ScaleTarget[] {
  const targets: ScaleTarget[] = []
  const add = (target: string, value: number | null, limit: number, holds: (v: number) => boolean, resource: () => string): void => {
    const verdict = value === null ? null : holds(value)
    targets.push({ target, value, limit, holds: verdict, ...(verdict === false ? { resource: resource() } : {}) })
  }
  add('server RSS per connection with its subscriptions ≤ 8 KB', f.rssPerConnectionKB ?? null, 8, (v) => v <= 8,
    () => `memory: ${f.rssPerConnectionKB} KB per connection (${f.rssTotalMB} MB in ${f.instances} instances)`)
  add('idle CPU ≤ 5 % of a core per 100,000 connections (%)', f.idleCorePercentPer100k ?? null, 5, (v) => v <= 5,
    () => cpuVerdict(env, f, `${f.idleCorePercentPer10k} % of a core per 10,000 idle connections: ${f.idleUsPerSocketCycle} µs per socket per ${f.idleHeartbeatSeconds} s heartbeat cycle, ${f.idleSweepUsPerSocketCycle} µs of it in the ping sweep, ${f.idleRestUsPerSocketCycle} µs in the rest (pongs read, expiry sweep)`))
  // A broadcast that reached fewer sockets than are connected missed its target too.
  const all = f.broadcastDelivered === f.connections
  add('broadcast reaches every socket within 1.5 s (ms)', f.broadcastLastMs ?? null, 1500, (v) => all && v <= 1500,
    () => all
      ? cpuVerdict(env, f, `${f.broadcastCpuPerDeliveryUs} µs per delivery in the instances, each one message alone on its socket (a write of its own), and ${f.broadcastClientCpuPerDeliveryUs} µs in the load generators: ${f.broadcastCoresBusy} cores busy on average until the last socket` +
        (f.broadcastFloor === undefined ? '' : `; a raw write of one frame to every socket took ${f.broadcastFloor.lastMs} ms on the same sockets`))
      : `delivery: ${f.broadcastDelivered} of ${f.connections} sockets received it before progress stopped`)
  const storm = f.storm ?? {}
  add('storm: every client back within 30 s (s)', storm.recoverySeconds ?? null, 30, (v) => v <= 30,
    () => cpuVerdict(env, f, `peak ${storm.peakHandshakesPerSecond} handshakes/s`))
  add('storm: messages lost = 0', storm.lost ?? null, 0, (v) => v === 0,
    () => `history: ${storm.lost} messages never arrived, ${storm.gaps} gaps announced`)
  add('storm: handshakes refused by an instance = 0', storm.refused ?? null, 0, (v) => v === 0,
    () => `an instance answered ${storm.refused} handshakes with an HTTP error`)
  return targets
}

const entries = (counts: Record<string, number> | undefined, none = ''): string =>
  counts === undefined || Object.keys(counts).length === 0 ? none : Object.entries(counts).map(([key, count]) => `${key}: ${count}`).join(', ')
const spread = (q: Figures | null | undefined): string =>
  q === null || q === undefined ? '–' : `p10 ${q.p10} ms, p50 ${q.p50} ms, p90 ${q.p90} ms, p99 ${q.p99} ms, max ${q.max} ms`

export function scaleLines (f: Figures, results: Results): string[] {
  const env = results.environment
  const p = f.private ?? {}
  const s = f.storm ?? {}
  const fl = f.broadcastFloor
  const lines = [
    `Scale: ${f.connections} connections (each its private stream and one of 100 public streams) on ${f.instances} instances, one Redis (${f.redis}), ${f.loadgens} load generators`,
    `${results.startedAt}; ${env.cpu}, ${env.cores} cores, ${env.memoryGB} GB; load average before ${env.loadAverageBefore.join(' ')}, after ${env.loadAverageAfter.join(' ')}`,
    ...(busy(env, f.loadAverageMax) ? [`The machine was busy (load average up to ${peakLoad(env, f)}, above ${BUSY_LOAD}): these figures are not a clean run.`] : []),
    `- file descriptors per process (soft/hard): ${(f.fileLimits as Array<{ soft: number, hard: number, raised: boolean, note?: string }>).map((l) => `${l.soft}/${l.hard}${l.raised ? ' raised' : ''}${l.note === undefined ? '' : ` (${l.note})`}`).join(', ')}`,
    `- connected in ${f.connectSeconds} s`,
    `- server RSS: ${f.rssPerConnectionKB} KB per connection, ${f.rssPerSubscriptionKB} KB per subscription (growth over the second half of the connections; ${f.rssAveragePerConnectionKB} KB averaged over all, with the instances' one-time growth; ${f.rssTotalMB} MB in all instances); heap ${f.heapPerConnectionKB} KB per connection, ${f.heapCommittedPerConnectionKB} KB committed, ${f.externalPerConnectionKB} KB external`,
    `- kernel (/proc/net/sockstat, both ends of each loopback connection): ${f.kernelTcpSocketsPerConnection} TCP sockets, ${f.kernelSocketMemPerConnectionKB} KB of buffers and ${f.kernelSocketSlabPerConnectionKB ?? '–'} KB of socket objects (/proc/slabinfo) per connection`,
    `- idle over ${f.idleSeconds} s (whole ${f.idleHeartbeatSeconds} s heartbeat periods, ${f.idleSweeps?.ran} ping sweeps where ${f.idleSweeps?.expected} were due): ${f.idleCorePercentPer10k} % of a core per 10,000 connections (all instances ${f.idleInstancesCorePercent} % of a core with the sockets, ${f.idleEmptyInstancesCorePercent} % with none: the constant timers, Redis, presence)`,
    `  per socket per heartbeat cycle: ${f.idleUsPerSocketCycle} µs of server CPU, ${f.idleSweepUsPerSocketCycle} µs in the ping sweep and ${f.idleRestUsPerSocketCycle} µs in the rest (pongs read, the expiry sweep)`,
    `- broadcast to all: last socket after ${f.broadcastLastMs} ms, ${f.broadcastDelivered} delivered, ${f.broadcastCpuPerDeliveryUs} µs of server CPU per delivery (one message alone per socket, so one write each; ${f.broadcastSweeps ?? 0} heartbeat sweeps in the window, their ${f.broadcastSweepCpuMs ?? 0} ms left out${f.broadcastTries === undefined ? '' : `; measured ${f.broadcastTries.edge} times to find a window without one`}), ${f.broadcastClientCpuPerDeliveryUs} µs of load-generator CPU, ${f.broadcastCoresBusy} cores busy`,
    ...(fl === undefined
      ? []
      : [`  floor on the same sockets (each instance writes one pre-framed frame of the same length straight to every socket, no edge code): last socket after ${fl.lastMs} ms, ${fl.delivered} delivered, ${fl.cpuPerDeliveryUs} µs of server CPU and ${fl.clientCpuPerDeliveryUs} µs of load-generator CPU per delivery, ${fl.coresBusy} cores busy; the edge takes ${fl.timeRatio}× the floor's time and ${fl.cpuRatio}× its server CPU`]),
    `- private at ${p.rate} msg/s to random users: p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms, ${p.delivered}/${p.sent} delivered`,
    `- storm (one instance SIGKILLed, ${s.orphans} clients): ${s.back} open again${s.recoverySeconds === null ? ' (not all)' : ` after ${s.recoverySeconds} s`}, peak ${s.peakHandshakesPerSecond} handshakes/s, ${s.lost} of ${s.published} lost, ${s.gaps} gaps, ${s.refused} handshakes refused; ${s.publishFailures} publishes failed (the publisher was told${s.firstPublishFailure === null ? '' : `: ${s.firstPublishFailure}`}), ${s.failedButDelivered} of them delivered all the same`,
    ...(s.reconnectMs === undefined
      ? []
      : [
          `  storm reconnects: attempts each needed ${entries(s.attemptsPerReconnect)}; failed attempts by reason ${entries(s.failedAttempts, ' (none)')}${Object.keys(s.failedAttemptMeanMs ?? {}).length === 0 ? '' : ` (mean ms each: ${entries(s.failedAttemptMeanMs)})`}`,
          `  from drop to subscribed: ${spread(s.reconnectMs)}; the successful attempt itself: ${spread(s.successfulAttemptMs)}; reconnects per second after the kill: ${(s.reconnectsBySecond as number[]).join(' ')}`,
          `  kernel TCP counters over the recovery (machine-wide; listen backlog ${s.listenBacklog}): ${entries(s.kernelTcp)}`
        ]),
    '',
    'Targets (issue 31):'
  ]
  for (const t of scaleTargets(f, env)) {
    const verdict = t.holds === null ? 'not measured' : t.holds ? 'met' : 'MISSED'
    lines.push(`- ${t.target}: ${t.value ?? '–'} → ${verdict}${t.resource === undefined ? '' : `; ran out: ${t.resource}`}`)
  }
  return [...lines, '']
}
