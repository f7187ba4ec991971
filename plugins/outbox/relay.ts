import type { FastifyBaseLogger } from 'fastify'
import type { Client, ClientConfig } from 'pg'
import { rejectReason } from '../amqp/message.js'
import type { PublishInput } from '../notify.js'
import { within } from '../util.js'
import { markRowsQuery, pendingRowsQuery, RELAY_SESSION } from './queries.js'
import { rowInput, rowTopic, type OutboxDeadReason, type OutboxRow } from './row.js'
import { outboxChannel } from './schema.js'

// The relay's loop on its one dedicated connection: take the table's advisory lock (one relay
// per table at a time), LISTEN, then publish pending rows in id order (commit order per topic,
// see schema.ts), each under its row's idempotency key, and mark them done or dead.

/** Publishes `input` at most once per `key` (`app.notifyIdempotency.publish`), continuing the inserter's `traceparent` when the row has one. */
export type KeyedPublish = (key: string, input: PublishInput, traceparent: string | undefined) => Promise<{ replayed: boolean }>

/** `connecting` while the connection is not up, `standby` while another relay holds the table, `relaying`, `closed`. */
export type OutboxRelayState = 'connecting' | 'standby' | 'relaying' | 'closed'

/** Counts of what this relay did with rows since it started. */
export interface OutboxRelayStats {
  /** Published and marked done. */
  published: number
  /** Marked done without publishing: their key had published already (a relay died before marking them). */
  replayed: number
  /** Marked done with a `dead_reason`: they can never be published. */
  dead: number
  /** Left pending after a passing failure (the bus down), tried again after `retryDelay`. */
  retried: number
}

export interface RelaySettings {
  connection: ClientConfig
  table: string
  batchSize: number
  pollInterval: number
  lockInterval: number
  retryDelay: number
  maxDataBytes: number
  migration: string | null
  log: FastifyBaseLogger
  publish: KeyedPublish
  createClient: (config: ClientConfig) => Client
}

type Outcome = 'published' | 'replayed' | 'retry' | { dead: OutboxDeadReason }

export class OutboxRelay {
  state: OutboxRelayState = 'connecting'
  readonly stats: OutboxRelayStats = { published: 0, replayed: 0, dead: 0, retried: 0 }
  readonly #s: RelaySettings
  #client: Client | null = null
  #broken: Error | null = null
  #woken = false
  #wake: (() => void) | null = null
  #loop: Promise<void> | null = null
  #failing = false

  constructor (settings: RelaySettings) {
    this.#s = settings
  }

  start (): void {
    this.#loop = this.#run()
  }

  async close (timeout: number): Promise<void> {
    this.state = 'closed'
    this.#rouse()
    if (this.#loop !== null && await within(timeout, this.#loop) === null) this.#s.log.warn('notify edge: outbox relay did not stop in time')
    await this.#drop(timeout)
  }

  #closed (): boolean {
    return this.state === 'closed'
  }

  async #run (): Promise<void> {
    while (!this.#closed()) {
      try {
        await this.#connect()
        if (await this.#lead()) await this.#relay()
      } catch (err) {
        if (this.#closed()) break
        this.#s.log.warn({ err }, 'notify edge: outbox relay lost its connection; it reconnects')
      }
      await this.#drop(this.#s.lockInterval)
      if (!this.#closed()) this.state = 'connecting'
      await this.#pause(this.#s.lockInterval, false)
    }
  }

  async #connect (): Promise<void> {
    const client = this.#s.createClient(this.#s.connection)
    this.#client = client
    this.#broken = null
    client.on('error', (err) => { this.#broken = err; this.#rouse() })
    client.on('end', () => { this.#broken ??= new Error('connection ended'); this.#rouse() })
    client.on('notification', () => { this.#woken = true; this.#rouse() })
    await client.connect()
    if (this.#s.migration !== null) await client.query(this.#s.migration)
    await client.query(RELAY_SESSION)
  }

  /** Waits for the table's lock; false when closed first. A session lock: it goes with the connection. */
  async #lead (): Promise<boolean> {
    while (!this.#closed()) {
      const { rows } = await this.#query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)::bigint) AS locked', [`relay:${this.#s.table}`])
      if (rows[0].locked) return true
      this.state = 'standby'
      await this.#pause(this.#s.lockInterval, false)
      this.#check()
    }
    return false
  }

  async #relay (): Promise<void> {
    await this.#query(`LISTEN "${outboxChannel(this.#s.table)}"`)
    this.state = 'relaying'
    this.#s.log.info({ table: this.#s.table }, 'notify edge: relaying the outbox')
    while (!this.#closed()) {
      this.#woken = false
      const { full, retry } = await this.#batch()
      if (retry) await this.#pause(this.#s.retryDelay, false)
      else if (!full) await this.#pause(this.#s.pollInterval, true)
      this.#check()
    }
  }

  /** One batch of pending rows: each topic's rows in order, topics side by side; then marks them. */
  async #batch (): Promise<{ full: boolean, retry: boolean }> {
    const { rows } = await this.#query<OutboxRow>(pendingRowsQuery(this.#s.table), [this.#s.batchSize])
    const topics = new Map<string, OutboxRow[]>()
    for (const row of rows) {
      const topic = rowTopic(row)
      const list = topics.get(topic)
      if (list === undefined) topics.set(topic, [row])
      else list.push(row)
    }
    const done: string[] = []
    const dead: Array<{ id: string, reason: OutboxDeadReason }> = []
    const counts = { published: 0, replayed: 0, retried: 0 }
    await Promise.all([...topics.values()].map(async (topicRows) => {
      for (const row of topicRows) {
        const outcome = await this.#publish(row)
        // A later row of the topic must not overtake this one: the rest wait for the next batch.
        if (outcome === 'retry') { counts.retried++; return }
        if (typeof outcome === 'object') dead.push({ id: row.id, reason: outcome.dead })
        else { done.push(row.id); counts[outcome]++ }
      }
    }))
    // One statement for all: done rows with a null reason, dead ones with theirs.
    const marked = [...done.map((id) => ({ id, reason: null })), ...dead]
    if (marked.length > 0) {
      await this.#query(markRowsQuery(this.#s.table), [marked.map((m) => m.id), marked.map((m) => m.reason)])
    }
    this.stats.published += counts.published
    this.stats.replayed += counts.replayed
    this.stats.retried += counts.retried
    this.stats.dead += dead.length
    const retry = counts.retried > 0
    if (!retry) this.#failing = false
    return { full: rows.length === this.#s.batchSize, retry }
  }

  async #publish (row: OutboxRow): Promise<Outcome> {
    const mapped = rowInput(row, this.#s.maxDataBytes)
    if ('dead' in mapped) return this.#dead(row, mapped.dead, mapped.message)
    try {
      const { replayed } = await this.#s.publish(`outbox:${this.#s.table}:${row.id}`, mapped.input, row.traceparent ?? undefined)
      return replayed ? 'replayed' : 'published'
    } catch (err) {
      const reason = rejectReason(err)
      // A publish error maps to unknown_stream, schema or invalid only.
      if (reason !== null) return this.#dead(row, reason as OutboxDeadReason, (err as Error).message)
      if (!this.#failing) this.#s.log.warn({ err, id: row.id }, 'notify edge: outbox row not published; retried until the edge can publish again')
      this.#failing = true
      return 'retry'
    }
  }

  #dead (row: OutboxRow, reason: OutboxDeadReason, message: string): Outcome {
    this.#s.log.warn({ id: row.id, stream: row.stream.slice(0, 64), reason }, `notify edge: outbox row dead: ${message}`)
    return { dead: reason }
  }

  async #query<R> (text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    this.#check()
    return await this.#client!.query(text, values) as unknown as { rows: R[] }
  }

  /** Throws what broke the connection, so the loop reconnects. */
  #check (): void {
    if (this.#broken !== null) throw this.#broken
  }

  /** Resolves after `ms`, or sooner on close, a broken connection, or (when `onNotify`) a NOTIFY. */
  async #pause (ms: number, onNotify: boolean): Promise<void> {
    if (this.#closed() || this.#broken !== null || (onNotify && this.#woken)) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      timer.unref()
      const wake = onNotify ? done : () => { if (this.#closed() || this.#broken !== null) done() }
      function done (): void { clearTimeout(timer); resolve() }
      this.#wake = wake
    })
    this.#wake = null
  }

  #rouse (): void {
    this.#wake?.()
  }

  async #drop (timeout: number): Promise<void> {
    const client = this.#client
    this.#client = null
    if (client === null) return
    client.removeAllListeners('notification')
    // An 'error' after this must not crash the process.
    client.removeAllListeners('error')
    client.on('error', () => {})
    // end() waits for the server's goodbye; a server that is gone never says it.
    if (await within(timeout, client.end().catch(() => {})) === null) (client as unknown as { connection?: { stream?: { destroy (): void } } }).connection?.stream?.destroy()
  }
}
