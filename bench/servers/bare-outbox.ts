import pg from 'pg'
import { outboxChannel } from '../../plugins/index.js'
import { argument, serve } from '../lib/ipc.js'
import { Consumed } from '../lib/consumed.js'
import { RELAY_SESSION } from '../../plugins/outbox/queries.js'

// The pipelines scenario's outbox yardstick: what any relay must do with PostgreSQL and nothing
// more: LISTEN, read pending rows in batches in id order, parse them, mark them done; its
// session planned as the relay's is (an ordered scan of the pending index), its batch the relay's default.

const table = argument('table')!
const batchSize = Number(argument('batch') ?? 100)
const client = new pg.Client({ connectionString: argument('database')! })
await client.connect()
await client.query(RELAY_SESSION)
await client.query(`LISTEN "${outboxChannel(table)}"`)
let wake: (() => void) | null = null
let woken = false
client.on('notification', () => { woken = true; wake?.() })

const consumed = new Consumed()
const state = { closing: false }

const loop = (async () => {
  while (!state.closing) {
    woken = false
    const { rows } = await client.query(`SELECT o.id, o.data FROM ${table} AS o WHERE done_at IS NULL ORDER BY o.id LIMIT $1`, [batchSize])
    const published = rows.map((row) => (JSON.parse(row.data as string) as { t: number }).t)
    if (rows.length > 0) await client.query(`UPDATE ${table} SET done_at = now() WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)])
    // Consumed once marked: what a relay must do before it may forget a row.
    for (const t of published) consumed.seen(t)
    if (rows.length < batchSize && !woken) await new Promise<void>((resolve) => { wake = resolve; setTimeout(resolve, 1000) })
  }
})()

serve(consumed.commands(async () => {
  state.closing = true
  wake?.()
  await loop.catch(() => {})
  await client.end()
}), {})
