import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter } from 'prom-client'
import {
  CONTROL_ACTIONS, commandTarget, controlCommand, controlTopic,
  type ControlAction, type ControlCommand, type ControlResult, type NotifyControl
} from '../control-commands.js'
import type { ControlledConnection, NotifyControlHooks } from '../control-hooks.js'
import type { BusMessage } from '../bus/index.js'
import { ControlUnavailableError, InvalidOptionError } from '../errors.js'
import { topicPrefixOption } from '../topics.js'
import { positiveInteger, within } from '../util.js'
import { MemoryRevocationStore } from './memory-store.js'
import { RevocationList } from './revocation-list.js'
import type { RevocationStore } from './store.js'
import { Replies } from './replies.js'

export type { RevocationStore } from './store.js'
export { MemoryRevocationStore } from './memory-store.js'
export { RedisRevocationStore, type RedisRevocationStoreOptions } from './redis-store.js'
export { RevocationList } from './revocation-list.js'

export interface NotifyControlOptions {
  /** The edge's topic prefix: instances with the same one act on each other's commands. @default 'notify' */
  topicPrefix?: string
  /**
   * Where revocations are kept for instances that start later (and after a bus reconnect):
   * a `RedisRevocationStore` on Redis. @default a `MemoryRevocationStore` (one instance)
   */
  store?: RevocationStore
  /**
   * The longest lifetime of a token the auth service issues, in ms: a revocation by user and
   * `before` is kept this long after `before`, when every token it covers has expired. @default 86400000 (24 h)
   */
  maxTokenLifetime?: number
  /**
   * A JWT claim listing streams (or channels) to subscribe a connection to when it opens, e.g.
   * `'streams'` for `{"sub":"alice","streams":["room:lobby"]}`; each is subscribed as a `subscribe`
   * frame would be (the stream's `authorize` hook still runs). @default undefined: none
   */
  streamsClaim?: string
  /** How long an action waits for every instance to report what it touched, in ms. @default 1000 */
  replyTimeout?: number
}

/**
 * What travels on the control topic: a command, with the reference to answer with and the instance
 * to answer (absent from a publisher's), or an answer. One topic for both: every instance sees
 * every answer and keeps its own (actions are rare; one subscription per instance is not).
 */
type Envelope =
  | ControlCommand & { ref: string, replyTo?: string }
  | { action: 'reply', ref: string, to: string, touched: number }

declare module 'fastify' {
  interface FastifyInstance {
    /** This instance's copy of the revocation list. */
    notifyRevocations: RevocationList
  }
}

const CLOSE_FORBIDDEN = 4003
const SYNC_RETRY_MS = 1000

async function fastifyNotifyControl (app: FastifyInstance, opts: NotifyControlOptions): Promise<void> {
  const prefix = topicPrefixOption(opts.topicPrefix)
  const maxTokenLifetime = positiveInteger('maxTokenLifetime', opts.maxTokenLifetime, 86_400_000)
  const replyTimeout = positiveInteger('replyTimeout', opts.replyTimeout, 1000)
  const store = opts.store ?? new MemoryRevocationStore()
  if (typeof store?.add !== 'function' || typeof store.list !== 'function') throw new InvalidOptionError('store must implement add() and list()')
  const streamsClaim = opts.streamsClaim
  if (streamsClaim !== undefined && (typeof streamsClaim !== 'string' || streamsClaim.length === 0)) throw new InvalidOptionError('streamsClaim must be a claim name')
  const bus = app.notifyBus
  const list = new RevocationList()
  const topic = controlTopic(prefix)
  const instance = randomUUID()
  const replies = new Replies()
  const declared = new Set(app.notify.streams.keys())
  const metrics = controlMetrics(app)

  function * connections (): Iterable<ControlledConnection> {
    if (!app.hasDecorator('notifyStreams')) return
    for (const route of app.notifyStreams.values()) yield * route.connections
  }

  /** Acts on this instance's connections; resolves with how many it touched. */
  function apply (command: ControlCommand): number {
    let touched = 0
    if (command.action === 'revoke') {
      list.add(command.revocation)
      for (const connection of connections()) {
        if (!list.revoked(connection.principal)) continue
        connection.close(CLOSE_FORBIDDEN, 'token revoked')
        touched++
      }
      return touched
    }
    for (const connection of connections()) {
      if (connection.principal.user !== command.user) continue
      touched++
      if (command.action === 'disconnect') connection.close(CLOSE_FORBIDDEN, 'disconnected')
      else connection.enqueue({ event: command.action, id: undefined, streams: command.streams.map((stream) => ({ stream })) })
    }
    return touched
  }

  function onMessage (message: BusMessage): void {
    const envelope = JSON.parse(message.frame) as Envelope
    if (envelope.action === 'reply') {
      if (envelope.to === instance) replies.add(envelope.ref, envelope.touched)
      return
    }
    const touched = apply(envelope)
    if (envelope.replyTo === undefined) return
    const reply: Envelope = { action: 'reply', ref: envelope.ref, to: envelope.replyTo, touched }
    bus.publish({ topic, id: randomUUID(), frame: JSON.stringify(reply) })
      .catch((err: unknown) => app.log.warn({ err }, 'notify control: reply not sent'))
  }

  /** Loads the stored list, and writes back what this instance knows that the store lost (a Redis restart). */
  async function sync (): Promise<void> {
    const stored = await store.list()
    for (const revocation of stored) list.add(revocation)
    const known = new Set(stored.map((entry) => JSON.stringify(entry)))
    for (const revocation of list.entries()) {
      if (!known.has(JSON.stringify(revocation))) await store.add(revocation)
    }
  }
  // A sync that fails (Redis back but still loading, or slow to answer its first script) is tried
  // again every SYNC_RETRY_MS until it succeeds: waiting for the next reconnect could be forever.
  let retry: NodeJS.Timeout | undefined
  let closing = false
  const syncLogged = (): void => {
    clearTimeout(retry)
    sync().catch((err: unknown) => {
      app.log.warn({ err }, 'notify control: revocation list not synchronized with its store; retrying')
      if (!closing) retry = setTimeout(syncLogged, SYNC_RETRY_MS).unref()
    })
  }

  // Not awaited: registration does not wait for the bus (an action waits for it instead).
  const listening = bus.subscribe(topic, onMessage, true)
  const stopResync = bus.onResubscribe(syncLogged)
  const sweep = setInterval(() => list.sweep(), 60_000)
  sweep.unref()
  app.addHook('onReady', syncLogged)
  app.addHook('onClose', async () => {
    closing = true
    clearTimeout(retry)
    clearInterval(sweep)
    stopResync()
    replies.close()
    // Not awaited: the bus closes its connections right after, and a Redis that is down would hold
    // the close for an UNSUBSCRIBE it never answers. The listener is released all the same.
    bus.unsubscribe(topic, onMessage).catch((err: unknown) => app.log.debug({ err }, 'notify control: control topic not unsubscribed before close'))
  })

  async function act (action: ControlAction, input: unknown, by = 'app'): Promise<ControlResult> {
    const command = controlCommand(action, input, declared, maxTokenLifetime)
    if (command.action === 'revoke') {
      try {
        await store.add(command.revocation)
      } catch (err) {
        throw new ControlUnavailableError(`revocation not stored: ${(err as Error).message}`)
      }
    }
    if (await within(replyTimeout, listening) === null) throw new ControlUnavailableError('the control topic is not subscribed yet')
    const ref = randomUUID()
    const gathering = replies.open(ref)
    let receivers: number | null
    try {
      receivers = await bus.publish({ topic, id: ref, frame: JSON.stringify({ ...command, ref, replyTo: instance }) })
    } catch (err) {
      replies.cancel(ref)
      throw new ControlUnavailableError((err as Error).message)
    }
    const result = await gathering.wait(receivers, replyTimeout)
    metrics.acted(action, result.connections ?? 0)
    app.log.info({ control: { by, ...commandTarget(command), ...result } }, 'notify control action')
    return result
  }

  const control = Object.fromEntries(CONTROL_ACTIONS.map((action) =>
    [action, (input: unknown, caller?: { by?: string }) => act(action, input, caller?.by)])) as unknown as NotifyControl
  Object.assign(app.notify, control)

  const hooks: NotifyControlHooks = {
    revoked: (principal) => list.revoked(principal),
    opened (connection) {
      // Authenticated before a revocation landed here, opened after it.
      if (list.revoked(connection.principal)) return connection.close(CLOSE_FORBIDDEN, 'token revoked')
      if (streamsClaim === undefined) return
      const claimed = connection.principal.claims[streamsClaim]
      if (!Array.isArray(claimed)) return
      const streams = claimed.filter((name): name is string => typeof name === 'string').map((stream) => ({ stream }))
      if (streams.length > 0) connection.enqueue({ event: 'subscribe', id: undefined, streams })
    }
  }
  app.decorate('notifyControl', hooks)
  app.decorate('notifyRevocations', list)
}

/** The audit counters, on the metrics plugin's registry when it is registered. */
function controlMetrics (app: FastifyInstance): { acted: (action: ControlAction, touched: number) => void } {
  if (!app.hasDecorator('notifyMetrics')) return { acted: () => {} }
  const { registry, prefix } = app.notifyMetrics
  const actions = new Counter({ name: `${prefix}control_actions_total`, help: 'Admin actions (disconnect, revoke, subscribe, unsubscribe) issued from this instance', labelNames: ['action'], registers: [registry] })
  const touched = new Counter({ name: `${prefix}control_connections_touched_total`, help: 'Connections those actions reached, on every instance', labelNames: ['action'], registers: [registry] })
  return {
    acted (action, count) {
      actions.inc({ action })
      touched.inc({ action }, count)
    }
  }
}

export const notifyControl = fp(fastifyNotifyControl, {
  fastify: '5.x',
  name: 'notify-edge-control',
  dependencies: ['notify-edge-bus', 'notify-edge-notify']
})
export default notifyControl
