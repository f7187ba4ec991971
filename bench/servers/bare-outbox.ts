import pg from 'pg'
import { outboxChannel } from '../../plugins/index.js'
import { argument, serve } from '../lib/ipc.js'
import { nowUs } from '../lib/shared.js'

// The pipelines scenario's outbox yardstick: what any relay must do with PostgreSQL and nothing
// more: LISTEN, read pending rows in batches in id order, parse them, mark them done.

const table = argument('table')!
const batchSize = Number(argument('batch') ?? 100)
const client = new pg.Client({ connectionString: argument('database')! })
await client.connect()
await client.query(`LISTEN "${outboxChannel(table)}"`)
let wake: (() => void) | null = null
let woken = false
client.on('notification', () => { woken = true; wake?.() })

let consumed = 0
let firstT = Infinity
let lastAt = 0
let cpuStart = process.cpuUsage()
let waiting = null as { expected: number, resolve: () => void } | null
const state = { closing: false }

const loop = (async () => {
  while (!state.closing) {
    woken = false
    const { rows } = await client.query(`SELECT o.id, o.data FROM ${table} AS o WHERE done_at IS NULL ORDER BY o.id LIMIT $1`, [batchSize])
    for (const row of rows) {
      const t = (JSON.parse(row.data as string) as { t: number }).t
      if (t < firstT) firstT = t
    }
    if (rows.length > 0) await client.query(`UPDATE ${table} SET done_at = now() WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)])
    lastAt = nowUs()
    consumed += rows.length
    if (consumed >= (waiting?.expected ?? Infinity)) waiting?.resolve()
    if (rows.length < batchSize && !woken) await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 1000) })
  }
})()

serve({
  arm: () => {
    consumed = 0
    firstT = Infinity
    cpuStart = process.cpuUsage()
  },
  wait: async ({ expected }: { expected: number }) => {
    if (consumed < expected) await new Promise<void>((resolve) => { waiting = { expected, resolve } })
    waiting = null
    const { user, system } = process.cpuUsage(cpuStart)
    return { consumed, spanMs: (lastAt - firstT) / 1000, cpuUs: user + system }
  },
  close: async () => {
    state.closing = true
    wake?.()
    await loop.catch(() => {})
    await client.end()
    setImmediate(() => process.exit(0))
  }
}, {})
