import { round } from './lib/stats.js'
import { machineLines, type Environment } from './lib/machine.js'
import { scaleLines } from './scale/report.js'

/** What `bench/results/*.json` holds. */
export interface Results {
  version: 1
  quick: boolean
  startedAt: string
  durationSeconds: number
  environment: Environment
  contenders: Array<{ id: string, label: string }>
  scenarios: Array<{ id: string, kind: string, params: Record<string, number>, results: Record<string, Record<string, unknown>> }>
  targets?: TargetResult[]
  /** What the libraries under notify-edge cost by themselves, to read the targets against (`floors`). */
  floors?: FloorResult[]
  /** RabbitMQ, HTTP and gRPC ingress of notify-edge, next to a bare consumer (bench/ingress.ts). */
  ingress?: { params: Record<string, number>, results: Record<string, Record<string, unknown>> }
  /** PostgreSQL outbox and NATS JetStream into notify-edge, each next to its bare consumer (bench/pipelines.ts). */
  pipelines?: { params: Record<string, number>, results: Record<string, Record<string, unknown>> }
  /** The scale scenario (bench/scale/scenario.ts), or its error. */
  scale?: Record<string, unknown>
}

export interface TargetResult { target: string, value: number | null, limit: number, holds: boolean | null }

export interface FloorResult { floor: string, value: number | null }

export type Scenario = Results['scenarios'][number]

const METRICS: Record<string, Array<[key: string, label: string]>> = {
  fanout: [['cpuPerDeliveryUs', 'server CPU per delivery (µs)'], ['deliveriesPerSecond', 'deliveries/s'], ['p50Ms', 'latency p50 (ms)'], ['p99Ms', 'latency p99 (ms)'], ['delivered', 'delivered']],
  sustained: [
    ['cpuPerDeliveryUs', 'server CPU per delivery (µs)'], ['deliveriesPerSecond', 'deliveries/s'], ['publishesPerSecond', 'publishes/s'],
    ['p50Ms', 'latency p50 (ms)'], ['p99Ms', 'latency p99 (ms)'], ['p999Ms', 'latency p99.9 (ms)'], ['delivered', 'delivered']
  ],
  memory: [['rssPerConnectionKB', 'RSS per connection (KB)'], ['heapPerConnectionKB', 'heap per connection (KB)']],
  'cross-instance': [['p50Ms', 'latency p50 (ms)'], ['p99Ms', 'latency p99 (ms)'], ['p999Ms', 'latency p99.9 (ms)'], ['cpuPerMessageUs', 'CPU per message, A+B (µs)'], ['delivered', 'delivered']],
  handshakes: [['perSecond', 'handshakes/s'], ['p50Ms', 'latency p50 (ms)'], ['p99Ms', 'latency p99 (ms)'], ['cpuPerHandshakeUs', 'server CPU per handshake (µs)']],
  'redis-scale': [['ratePerSecond', 'publishes/s reached'], ['delivered', 'delivered'], ['p99Ms', 'latency p99 (ms)'], ['cpuPerMessageUs', 'CPU per message, A+B (µs)'], ['redisCpuPerMessageUs', 'Redis CPU per message, all nodes (µs)'], ['redisBusiestNodePercent', 'busiest Redis node CPU (%)']],
  presence: [['perSecond', 'handshakes/s'], ['p99Ms', 'latency p99 (ms)'], ['cpuPerHandshakeUs', 'server CPU per handshake (µs)'], ['redisBytesPerOnlineUser', 'Redis bytes per online user']]
}

function title ({ kind, params: p }: Scenario): string {
  const n = (value: number): string => value.toLocaleString('en-US')
  switch (kind) {
    case 'fanout': return `fan-out, ${n(p.subscribers)} subscribers × ${n(p.messages)} messages`
    case 'sustained': return `sustained, ${n(p.subscribers)} subscribers, ${p.rate === 0 ? `max msg/s (${p.publishers} publishers)` : `${n(p.rate)} msg/s`} × ${n(p.messages)}`
    case 'memory': return `memory, ${n(p.connections)} idle connections`
    case 'cross-instance': return `cross-instance, ${n(p.users)} users, ${n(p.rate)} msg/s for ${p.seconds} s`
    case 'redis-scale': return `cross-instance on ${p.masters === 1 ? 'one Redis' : `a ${p.masters}-master cluster`}, ${n(p.users)} users, ${n(p.rate)} msg/s for ${p.seconds} s`
    case 'presence': return `on Redis, presence ${p.on === 1 ? 'on' : 'off'}: ${n(p.count)} handshakes (${p.concurrency} at once), then ${n(p.users)} users online`
    default: return `handshakes, ${n(p.count)} (${p.concurrency} at once)`
  }
}

function format (value: unknown): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—'
  const abs = Math.abs(value)
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function metric (scenario: Scenario | undefined, contender: string, key: string): number | null {
  const value = scenario?.results[contender]?.[key]
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

function ratio (a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : round(a / b, 2)
}

/** Issues 4 and 15's targets, judged on this run's figures. */
export function judge (results: Results): TargetResult[] {
  const targets: TargetResult[] = []
  const add = (target: string, value: number | null, limit: number, holds: (v: number) => boolean): void => {
    targets.push({ target, value, limit, holds: value === null ? null : holds(value) })
  }
  const byKind = (kind: string): Scenario[] => results.scenarios.filter((s) => s.kind === kind)
  for (const s of byKind('fanout')) {
    const edge = metric(s, 'edge', 'cpuPerDeliveryUs')
    add(`${title(s)}: CPU per delivery ≤ 1.5 × ws frame-once`, ratio(edge, metric(s, 'ws-frame', 'cpuPerDeliveryUs')), 1.5, (v) => v <= 1.5)
    add(`${title(s)}: CPU per delivery ≤ 0.3 × Socket.IO`, ratio(edge, metric(s, 'socketio', 'cpuPerDeliveryUs')), 0.3, (v) => v <= 0.3)
  }
  for (const s of byKind('sustained')) {
    const edge = metric(s, 'edge', 'cpuPerDeliveryUs')
    if (s.params.rate === 0) {
      const burst = results.scenarios.find((b) => b.kind === 'fanout' && b.params.subscribers === s.params.subscribers)
      add(`${title(s)}: CPU per delivery ≤ 2 × the burst's`, ratio(edge, metric(burst, 'edge', 'cpuPerDeliveryUs')), 2, (v) => v <= 2)
      add(`${title(s)}: CPU per delivery ≤ 0.3 × Socket.IO`, ratio(edge, metric(s, 'socketio', 'cpuPerDeliveryUs')), 0.3, (v) => v <= 0.3)
    } else if (s.params.rate <= 100) {
      const p99 = metric(s, 'edge', 'p99Ms')
      const base = metric(s, 'edge-flush0', 'p99Ms')
      add(`${title(s)}: p99 ≤ flushInterval 0's + 2 ms (ms above)`, p99 === null || base === null ? null : round(p99 - base, 3), 2, (v) => v <= 2)
    }
  }
  for (const s of byKind('memory')) {
    const edge = metric(s, 'edge', 'rssPerConnectionKB')
    add('memory per idle connection (RSS) ≤ 1.3 × plain ws', ratio(edge, metric(s, 'ws-send', 'rssPerConnectionKB')), 1.3, (v) => v <= 1.3)
    add('memory per idle connection (RSS) ≤ 0.5 × Socket.IO', ratio(edge, metric(s, 'socketio', 'rssPerConnectionKB')), 0.5, (v) => v <= 0.5)
    add('heap per idle connection ≤ 1.0 × plain ws', ratio(metric(s, 'edge', 'heapPerConnectionKB'), metric(s, 'ws-send', 'heapPerConnectionKB')), 1, (v) => v <= 1)
  }
  for (const s of byKind('cross-instance')) {
    add(`cross-instance p99 ≤ 10 ms at ${s.params.rate} msg/s (ms)`, metric(s, 'edge', 'p99Ms'), 10, (v) => v <= 10)
    add('cross-instance CPU per message < Socket.IO redis adapter', ratio(metric(s, 'edge', 'cpuPerMessageUs'), metric(s, 'socketio', 'cpuPerMessageUs')), 1, (v) => v < 1)
    for (const [id, which] of [['edge', ''], ['edge-lean', ', lean emitter']]) {
      if (s.results[id] === undefined) continue
      const cpu = metric(s, id, 'cpuPerMessageUs')
      add(`cross-instance CPU per message ≤ 0.6 × Socket.IO${which}`, ratio(cpu, metric(s, 'socketio', 'cpuPerMessageUs')), 0.6, (v) => v <= 0.6)
      add(`cross-instance CPU per message ≤ 1.0 × plain ws + Redis${which}`, ratio(cpu, metric(s, 'ws-send', 'cpuPerMessageUs')), 1, (v) => v <= 1)
      add(`cross-instance p99 ≤ 5 ms${which} (ms)`, metric(s, id, 'p99Ms'), 5, (v) => v <= 5)
    }
  }
  const presence = (on: number): Scenario | undefined => byKind('presence').find((s) => s.params.on === on)
  const [off, on] = [presence(0), presence(1)]
  if (off !== undefined && on !== undefined) {
    add('presence on ÷ off: server CPU per handshake ≤ 1.1', ratio(metric(on, 'edge', 'cpuPerHandshakeUs'), metric(off, 'edge', 'cpuPerHandshakeUs')), 1.1, (v) => v <= 1.1)
    add('presence on ÷ off: handshakes per second ≥ 0.9', ratio(metric(on, 'edge', 'perSecond'), metric(off, 'edge', 'perSecond')), 0.9, (v) => v >= 0.9)
  }
  for (const s of byKind('handshakes')) {
    add('handshakes per second ≥ 1,000', metric(s, 'edge', 'perSecond'), 1000, (v) => v >= 1000)
    add('handshake p99 < 50 ms (ms)', metric(s, 'edge', 'p99Ms'), 50, (v) => v < 50)
    for (const [id, which] of [['edge', ''], ['edge-nolimit', ', no ticket rate limit']]) {
      if (s.results[id] === undefined) continue
      add(`handshakes per second ≥ 0.85 × plain ws${which}`, ratio(metric(s, id, 'perSecond'), metric(s, 'ws-send', 'perSecond')), 0.85, (v) => v >= 0.85)
      add(`CPU per handshake ≤ 1.2 × plain ws${which}`, ratio(metric(s, id, 'cpuPerHandshakeUs'), metric(s, 'ws-send', 'cpuPerHandshakeUs')), 1.2, (v) => v <= 1.2)
    }
  }
  if (results.ingress !== undefined) judgeIngress(results.ingress, add)
  if (results.pipelines !== undefined) judgePipelines(results.pipelines, add)
  return targets
}

/**
 * Not targets: how far the same plain server gets on the libraries notify-edge is built on, so
 * that a target relative to plain ws can be read against what those libraries leave. A handshake
 * through Fastify, @fastify/jwt and @fastify/websocket (`fastify-floor`), and a message between
 * instances through ws and ioredis doing nothing else (`ws-send`).
 */
export function floors (results: Results): FloorResult[] {
  const found: FloorResult[] = []
  const cpu = (s: Scenario, id: string): number | null => metric(s, id, 'cpuPerHandshakeUs')
  for (const s of results.scenarios.filter((s) => s.kind === 'handshakes' && s.results['fastify-floor'] !== undefined)) {
    found.push({ floor: 'CPU per handshake, the plain server on Fastify ÷ plain ws', value: ratio(cpu(s, 'fastify-floor'), cpu(s, 'ws-send')) })
    found.push({ floor: 'CPU per handshake, notify-edge ÷ the plain server on Fastify', value: ratio(cpu(s, 'edge'), cpu(s, 'fastify-floor')) })
    if (s.results['edge-nolimit'] !== undefined) {
      found.push({ floor: 'CPU per handshake, notify-edge with no ticket rate limit ÷ the plain server on Fastify', value: ratio(cpu(s, 'edge-nolimit'), cpu(s, 'fastify-floor')) })
    }
  }
  for (const s of results.scenarios.filter((s) => s.kind === 'cross-instance')) {
    found.push({ floor: 'cross-instance CPU per message, plain ws + Redis ÷ Socket.IO', value: ratio(metric(s, 'ws-send', 'cpuPerMessageUs'), metric(s, 'socketio', 'cpuPerMessageUs')) })
  }
  return found
}

/** Issue 11's targets, judged on the ingress figures. */
function judgeIngress (ingress: NonNullable<Results['ingress']>, add: (target: string, value: number | null, limit: number, holds: (v: number) => boolean) => void): void {
  const r = ingress.results
  const get = (id: string, key: string): number | null => typeof r[id]?.[key] === 'number' ? r[id][key] as number : null
  const rate = get('amqp-flood', 'messagesPerSecond')
  add(`RabbitMQ → ${ingress.params.users} private subscribers: msg/s ≥ 10,000`, rate, 10000, (v) => v >= 10000)
  add('… or ≥ 0.8 × the bare consumer where the broker saturates first', ratio(rate, get('bare-consumer', 'messagesPerSecond')), 0.8, (v) => v >= 0.8)
  add(`RabbitMQ → socket p99 ≤ 20 ms at ${ingress.params.rate} msg/s (ms)`, get(`amqp-${ingress.params.rate}`, 'p99Ms'), 20, (v) => v <= 20)
  add('gRPC CPU per publish ≤ HTTP', ratio(get('cpu-grpc', 'cpuPerPublishUs'), get('cpu-http', 'cpuPerPublishUs')), 1, (v) => v <= 1)
  add('gRPC PublishStream CPU per publish ≤ HTTP', ratio(get('cpu-grpc-stream', 'cpuPerPublishUs'), get('cpu-http', 'cpuPerPublishUs')), 1, (v) => v <= 1)
}

/** Issue 29's targets, judged on the pipelines figures. */
function judgePipelines (pipelines: NonNullable<Results['pipelines']>, add: (target: string, value: number | null, limit: number, holds: (v: number) => boolean) => void): void {
  const { params: p, results: r } = pipelines
  const get = (pipeline: string, part: string, key: string): number | null => {
    const value = (r[pipeline]?.[part] as Record<string, unknown> | undefined)?.[key]
    return typeof value === 'number' ? value : null
  }
  add(`outbox → ${p.users} private subscribers: msg/s ≥ 5,000`, get('outbox', 'edge', 'messagesPerSecond'), 5000, (v) => v >= 5000)
  add(`outbox commit → socket p99 ≤ 150 ms at ${p.rate} msg/s (ms)`, get('outbox', `edge-${p.rate}`, 'p99Ms'), 150, (v) => v <= 150)
  add('JetStream → sockets ≥ 0.8 × its bare consumer', typeof r.jetstream?.edgeOverBare === 'number' ? r.jetstream.edgeOverBare : null, 0.8, (v) => v >= 0.8)
}

function pipelineLines (pipelines: NonNullable<Results['pipelines']>): string[] {
  const { params: p, results: r } = pipelines
  const lines = [`Pipelines: ${p.users.toLocaleString('en-US')} private subscribers; flood of ${p.flood.toLocaleString('en-US')}; latency at ${p.rate} msg/s`, '',
    '| pipeline | bare msg/s | edge → sockets msg/s | edge ÷ bare | bare / edge CPU per message (µs) | p50 / p99 (ms) |', '| --- | ---: | ---: | ---: | ---: | ---: |']
  for (const [name, result] of Object.entries(r)) {
    if (result.error !== undefined) { lines.push(`| ${name} | ${String(result.error)} | | | | |`); continue }
    const part = (key: string): Record<string, unknown> => (result[key] ?? {}) as Record<string, unknown>
    const steady = part(`edge-${p.rate}`)
    lines.push(`| ${name} | ${format(part('bare').messagesPerSecond)} | ${format(part('edge').messagesPerSecond)}${part('edge').complete === false ? ' !' : ''} | ${format(result.edgeOverBare)} | ${format(part('bare').cpuPerMessageUs)} / ${format(part('edge').cpuPerMessageUs)} | ${format(steady.p50Ms)} / ${format(steady.p99Ms)}${steady.complete === false ? ' !' : ''} |`)
  }
  return lines
}

const INGRESS_ROWS: Array<[id: string, key: string, label: string]> = [
  ['bare-consumer', 'messagesPerSecond', 'bare consumer (rabbitmq-client, ack only): msg/s'],
  ['amqp-flood', 'messagesPerSecond', 'RabbitMQ → edge → sockets: msg/s'],
  ['amqp-flood', 'cpuPerMessageUs', 'edge CPU per message at that rate (µs)'],
  ['cpu-http', 'cpuPerPublishUs', 'edge CPU per publish, POST /notifications (µs)'],
  ['cpu-grpc', 'cpuPerPublishUs', 'edge CPU per publish, gRPC (µs)'],
  ['cpu-grpc', 'overHttp', '… gRPC ÷ HTTP'],
  ['cpu-grpc-stream', 'cpuPerPublishUs', 'edge CPU per publish, gRPC PublishStream (µs)'],
  ['cpu-grpc-stream', 'overHttp', '… gRPC PublishStream ÷ HTTP'],
  ['cpu-amqp', 'cpuPerPublishUs', 'edge CPU per publish, RabbitMQ (µs)']
]

function ingressLines (ingress: NonNullable<Results['ingress']>): string[] {
  const { params: p, results: r } = ingress
  const lines = [`Ingress: ${p.users.toLocaleString('en-US')} private subscribers; flood of ${p.flood.toLocaleString('en-US')} messages; CPU at ${p.cpuRate} msg/s`, '', '| measure | value |', '| --- | ---: |']
  for (const [id, key, label] of INGRESS_ROWS) lines.push(`| ${label} | ${format(r[id]?.[key])}${r[id]?.complete === false ? ' !' : ''} |`)
  const steady = r[`amqp-${p.rate}`]
  lines.push(`| RabbitMQ → socket latency p50 / p99 at ${p.rate} msg/s (ms) | ${format(steady?.p50Ms)} / ${format(steady?.p99Ms)}${steady?.complete === false ? ' !' : ''} |`, '')
  for (const [id, result] of Object.entries(r)) {
    if (result.error !== undefined) lines.push(`- ${id}: ${String(result.error)}`)
    else if (result.complete === false) lines.push(`- ${id}: incomplete (${JSON.stringify(result)})`)
  }
  return lines
}

/** The run as text: a Markdown table with notify-edge's ratio to each contender, then the targets. */
export function report (results: Results): string {
  const { contenders, environment: env } = results
  const others = contenders.filter((c) => c.id !== 'edge')
  const hasEdge = contenders.some((c) => c.id === 'edge')
  const header = ['scenario', 'metric', ...contenders.map((c) => c.label), ...(hasEdge ? others.map((c) => `edge ÷ ${c.label}`) : [])]
  const rows: string[][] = []
  const problems: string[] = []
  for (const scenario of results.scenarios) {
    for (const [index, [key, label]] of (METRICS[scenario.kind] ?? []).entries()) {
      const values = contenders.map((c) => {
        const result = scenario.results[c.id]
        if (result?.error !== undefined) return index === 0 ? 'error' : ''
        const text = format(result?.[key])
        return result?.complete === false && (key === 'delivered' || index === 0) ? `${text} !` : text
      })
      const ratios = hasEdge ? others.map((c) => format(ratio(metric(scenario, 'edge', key), metric(scenario, c.id, key)))) : []
      rows.push([index === 0 ? title(scenario) : '', label, ...values, ...ratios])
    }
    for (const c of contenders) {
      const result = scenario.results[c.id]
      if (result?.error !== undefined) problems.push(`${scenario.id} × ${c.label}: ${String(result.error)}`)
      else if (result?.complete === false) problems.push(`${scenario.id} × ${c.label}: incomplete (${JSON.stringify(result)})`)
    }
  }
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  const table = results.scenarios.length > 0
    ? [line(header), line(header.map((_, i) => (i < 2 ? '---' : '---:'))), ...rows.map(line), '']
    : []
  const lines = [
    `notify-edge benchmark${results.quick ? ' (--quick: small sizes, not for comparison)' : ''}, ${results.startedAt}`,
    ...machineLines(env, Number(results.scale?.loadAverageMax ?? 0)),
    '',
    ...table
  ]
  if (problems.length > 0) lines.push('Problems (! in the table):', ...problems.map((p) => `- ${p}`), '')
  if (results.ingress !== undefined) lines.push(...ingressLines(results.ingress), '')
  if (results.pipelines !== undefined) lines.push(...pipelineLines(results.pipelines), '')

  if (results.scale !== undefined) lines.push(...(results.scale.error === undefined ? scaleLines(results.scale, results) : [`Scale: ${String(results.scale.error)}`, '']))
  if (hasEdge) {
    results.targets = judge(results)
    results.floors = floors(results)
  }
  if (results.quick) {
    lines.push('Targets are judged on full runs only: --quick sizes are too small to compare.', '')
  } else if (results.targets !== undefined && results.targets.length > 0) {
    lines.push('Targets (issues 4, 11 and 15):')
    for (const t of results.targets) {
      const verdict = t.holds === null ? 'not measured' : t.holds ? 'holds' : 'MISSED'
      lines.push(`- ${t.target}: ${format(t.value)} → ${verdict}`)
    }
    lines.push('')
    if (results.floors !== undefined && results.floors.length > 0) {
      lines.push('Floors (what the libraries underneath cost by themselves; docs/benchmarks.md):')
      for (const f of results.floors) lines.push(`- ${f.floor}: ${format(f.value)}`)
      lines.push('')
    }
  }
  return `${lines.join('\n')}\n`
}
