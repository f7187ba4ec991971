import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { ClientConfig } from 'pg'
import { InvalidOptionError } from '../errors.js'
import { ensureIdempotency } from '../idempotency/index.js'
import { ingressTrace } from '../tracing.js'
import { positiveInteger } from '../util.js'
import { OutboxRelay, type OutboxRelayState, type OutboxRelayStats } from './relay.js'
import { outboxMigration, outboxTable } from './schema.js'

export * from './insert.js'
export { DEFAULT_OUTBOX_TABLE, outboxChannel, outboxMigration } from './schema.js'
export type { OutboxDeadReason } from './row.js'
export type { OutboxRelayState, OutboxRelayStats } from './relay.js'

export interface NotifyOutboxOptions {
  /**
   * The database: a `postgres://` URL or `pg` client settings. The relay opens one connection of
   * its own (a pooled one would lose the advisory lock when the pool recycles it).
   */
  database: string | ClientConfig
  /** The outbox table, `[schema.]name`, created by `outboxMigration()` / `sql/notify_outbox.sql`. @default 'notify_outbox' */
  table?: string
  /** Runs the migration on every connection. For development and tests: in production, migrate on purpose. @default false */
  migrate?: boolean
  /** Rows read (and published) per batch. @default 100 */
  batchSize?: number
  /** Milliseconds between reads when no NOTIFY arrives: the fallback if one is lost. @default 1000 */
  pollInterval?: number
  /** Milliseconds a standby relay waits between tries of the lock, and between reconnections. @default 1000 */
  lockInterval?: number
  /** Milliseconds before rows whose publish failed for a passing reason (bus down) are tried again. @default 1000 */
  retryDelay?: number
  /** Largest `data` in bytes; a larger row is marked dead (`too_large`). @default 65536, as `POST /notifications` */
  maxDataBytes?: number
  /** Milliseconds `app.close()` gives the batch in progress before the connection is dropped. @default 5000 */
  closeTimeout?: number
}

/** `app.notifyOutbox`: the relay's state and counts, e.g. for `/health`. */
export interface NotifyOutbox {
  readonly table: string
  readonly stats: Readonly<OutboxRelayStats>
  health (): { state: OutboxRelayState, table: string }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The outbox relay (see `NotifyOutbox`). */
    notifyOutbox: NotifyOutbox
  }
}

function connectionOption (database: unknown): ClientConfig {
  if (typeof database === 'string' && /^postgres(ql)?:\/\//.test(database)) return { connectionString: database }
  if (database !== null && typeof database === 'object' && !Array.isArray(database)) return database as ClientConfig
  throw new InvalidOptionError('database must be a postgres:// URL or pg client settings')
}

/**
 * Relays the outbox table: on every instance that registers it, one relay at a time (the others
 * stand by) publishes committed rows through `app.notifyIdempotency`, the row id as the key.
 * Works on an edge and on a publisher (`app.notify` remote).
 */
async function fastifyNotifyOutbox (app: FastifyInstance, opts: NotifyOutboxOptions): Promise<void> {
  const connection = connectionOption(opts?.database)
  const table = outboxTable(opts.table)
  const migrate = opts.migrate ?? false
  if (typeof migrate !== 'boolean') throw new InvalidOptionError('migrate must be a boolean')
  const settings = {
    batchSize: positiveInteger('batchSize', opts.batchSize, 100),
    pollInterval: positiveInteger('pollInterval', opts.pollInterval, 1000),
    lockInterval: positiveInteger('lockInterval', opts.lockInterval, 1000),
    retryDelay: positiveInteger('retryDelay', opts.retryDelay, 1000),
    maxDataBytes: positiveInteger('maxDataBytes', opts.maxDataBytes, 65536)
  }
  const closeTimeout = positiveInteger('closeTimeout', opts.closeTimeout, 5000)
  await ensureIdempotency(app)
  // Loaded here, not at import: an app without an outbox does not pay for the driver.
  const { default: pg } = await import('pg')
  const tracer = app.hasDecorator('notifyTracer') ? app.notifyTracer : null
  const relay = new OutboxRelay({
    ...settings,
    // keepAlive: a relay whose database host vanished notices, and lets a standby take over.
    connection: { keepAlive: true, keepAliveInitialDelayMillis: 5000, query_timeout: 30_000, application_name: 'notify-edge-outbox', ...connection },
    table,
    migration: migrate ? outboxMigration(table) : null,
    log: app.log.child({ outbox: table }),
    // The publish's span continues the one active at the insert (on an edge that traces; a publisher has no tracer).
    publish: (key, input, traceparent) => ingressTrace(tracer, traceparent, () => app.notifyIdempotency.publish(key, input)),
    createClient: (config) => new pg.Client(config)
  })
  app.decorate('notifyOutbox', { table, stats: relay.stats, health: () => ({ state: relay.state, table }) })
  app.addHook('onReady', async () => { relay.start() })
  app.addHook('onClose', () => relay.close(closeTimeout))
}

export const notifyOutbox = fp(fastifyNotifyOutbox, {
  fastify: '5.x',
  name: 'notify-edge-outbox',
  decorators: { fastify: ['notify'] }
})
export default notifyOutbox
