import { machineLines, type Environment } from '../lib/machine.js'
import { round } from '../lib/stats.js'

// The chat scenario's figures as text: one row per run, notify-edge's ratios to Socket.IO on as
// many instances, and issue 26's targets, judged only at the issue's size.

/** One run's figures, its error, or why it was not run (`na`). */
export type Row = Record<string, unknown>

export interface ChatResults {
  startedAt: string
  params: { rooms: number, members: number, seconds: number, calls: number, memberPresence: boolean }
  environment: Environment
  rows: Record<string, Row>
  rpc: Record<string, unknown>
}

const ROWS = ['edge-1', 'socketio-1', 'edge-2', 'socketio-2']
const TARGET = { cpu: 0.5, p99Ms: 20, rpc: 1.5 }

const num = (value: unknown): number | null => typeof value === 'number' && Number.isFinite(value) ? value : null
const format = (value: unknown): string => num(value) === null ? '–' : String(value)

/** `a ÷ b` of a figure of two rows, or null when either is missing. */
function ratio (a: Row | undefined, b: Row | undefined, key: string): number | null {
  const x = num(a?.[key])
  const y = num(b?.[key])
  return x === null || y === null || y === 0 ? null : round(x / y, 2)
}

function verdict (value: number | null, holds: (v: number) => boolean): string {
  return value === null ? 'not measured' : holds(value) ? 'holds' : 'MISSED'
}

export function chatReport (results: ChatResults): string {
  const { rows, params: p } = results
  const lines = [
    `notify-edge chat scenario (issue 26), ${results.startedAt}: ${p.rooms} rooms × ${p.members} members, each publishing once a second for ${p.seconds} s; member presence ${p.memberPresence ? 'on' : 'off'}`,
    ...machineLines(results.environment),
    '',
    '| run | deliveries | server CPU µs/delivery | Redis µs/delivery | p50 ms | p99 ms | CPU ÷ Socket.IO | p99 ÷ Socket.IO |',
    '|---|---:|---:|---:|---:|---:|---:|---:|'
  ]
  const problems: string[] = []
  for (const id of ROWS) {
    const r = rows[id]
    if (r === undefined) continue
    if (r.na !== undefined || r.error !== undefined) {
      lines.push(`| ${id} | ${r.na !== undefined ? `n/a (${String(r.na)})` : `error: ${String(r.error)}`} | | | | | | |`)
      continue
    }
    if (r.complete === false) problems.push(`${id}: ${format(r.delivered)} of ${format(r.expected)} delivered, ${format(r.acked)} of ${format(r.published)} publishes acknowledged, ${format(r.errors)} errors${r.firstError === undefined ? '' : ` (first: ${String(r.firstError)})`}`)
    const against = id.startsWith('edge-') ? rows[id.replace('edge-', 'socketio-')] : undefined
    const ratios = against === undefined ? ['', ''] : [format(ratio(r, against, 'cpuPerDeliveryUs')), format(ratio(r, against, 'p99Ms'))]
    lines.push(`| ${id} | ${format(r.delivered)}${r.complete === false ? ' !' : ''} | ${format(r.cpuPerDeliveryUs)} | ${format(r.redisCpuPerDeliveryUs)} | ${format(r.p50Ms)} | ${format(r.p99Ms)} | ${ratios.join(' | ')} |`)
  }
  lines.push('')
  if (problems.length > 0) lines.push('Incomplete (! above):', ...problems.map((line) => `- ${line}`), '')

  const rpc = results.rpc
  if (rpc.error !== undefined) lines.push(`RPC: error: ${String(rpc.error)}`, '')
  else {
    lines.push(`| ${p.calls} calls, 10 in flight | RPC orders.place | POST /orders (keep-alive) | ratio |`, '|---|---:|---:|---:|')
    lines.push(`| server CPU µs/call | ${format(rpc.rpcCpuPerCallUs)} | ${format(rpc.postCpuPerCallUs)} | ${format(rpc.ratio)} |`, '')
  }

  if (p.rooms < 1000 || p.members < 10) {
    lines.push('Targets are judged at the issue\'s size only (--rooms 1000 --members 10).', '')
  } else {
    const cpu = ratio(rows['edge-1'], rows['socketio-1'], 'cpuPerDeliveryUs')
    const p99 = num(rows['edge-1']?.p99Ms)
    const rpcRatio = num(rpc.ratio)
    lines.push(
      'Targets (issue 26, item 5):',
      `- CPU per delivery, one instance, notify-edge ÷ Socket.IO ≤ ${TARGET.cpu}: ${format(cpu)} → ${verdict(cpu, (v) => v <= TARGET.cpu)}`,
      `- p99 publish → deliver, one instance ≤ ${TARGET.p99Ms} ms: ${format(p99)} → ${verdict(p99, (v) => v <= TARGET.p99Ms)}`,
      `- CPU per call, RPC ÷ plain POST ≤ ${TARGET.rpc}: ${format(rpcRatio)} → ${verdict(rpcRatio, (v) => v <= TARGET.rpc)}`,
      ''
    )
  }
  return `${lines.join('\n')}\n`
}
