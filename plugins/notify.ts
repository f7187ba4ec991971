import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { BusMessage } from './bus/index.js'
import { InvalidOptionError } from './errors.js'
import { noControl } from './control-commands.js'
import { declareStreams, type DeclaredStream, type StreamDefinition } from './declarations.js'
import type { AppendedMessage, HistoryBounds, OnceKey } from './history/store.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './recorder.js'
import { messageFrame, type MessageTemplate } from './message.js'
import { mapLate } from './outcome.js'
import { noPresence, offlineHook, perTopic, presenceOf, publisherOf, type Notify, type OfflineHandoff, type OfflineMessage, type OnOffline, type PublishInput, type Sent } from './publishing.js'
import { topicPrefixOption } from './topics.js'
import { positiveInteger } from './util.js'
import { SpanKind, inSpan, notifyTracer, traceparentOf } from './tracing.js'
import { context, trace, type Tracer } from '@opentelemetry/api'

export type {
  Notify, OfflineFallback, OfflineHandoff, OfflineMessage, OnOffline, PresenceQuery, PresenceSource, PublicStreamPresence, PublishInput, PublishResult, UsersPresence
} from './publishing.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by the offline delivery plugin: takes over a publish's offline users (see `OfflineHandoff`). */
    notifyOfflineHandoff: OfflineHandoff | null
  }
}

export interface NotifyOptions {
  /** The declared streams. */
  streams: readonly StreamDefinition[]
  /** Prefix of every bus topic, so deployments can share one Redis. @default 'notify' */
  topicPrefix?: string
  /** Most users one publish may address (and one presence query may ask about). @default 1000 */
  maxUsersPerPublish?: number
  /**
   * Called after a publish to a private stream with the users who had no connection subscribed
   * to that stream on any instance at publish time, so that the service can fall back to e-mail
   * or push. Not awaited (the publish has succeeded already); a throw or a rejection is logged.
   * Not called when the bus cannot tell (a given emitter other than mqemitter-redis).
   */
  onOffline?: OnOffline
  /**
   * Trace publishes and deliveries with OpenTelemetry (the API: the app registers an SDK and an
   * exporter). The publish span's `traceparent` rides on the bus message (docs/observability.md).
   * @default false
   */
  tracing?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The edge's OpenTelemetry tracer, null when the notify plugin was registered without `tracing`. */
    notifyTracer: Tracer | null
  }
}

async function fastifyNotify (app: FastifyInstance, opts: NotifyOptions): Promise<void> {
  const prefix = topicPrefixOption(opts.topicPrefix)
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const offline = offlineHook(opts.onOffline, app.log)
  const streams = declareStreams(opts.streams, prefix)
  const ids = new MessageIdGenerator()
  if (opts.tracing !== undefined && typeof opts.tracing !== 'boolean') throw new InvalidOptionError('tracing must be a boolean')
  const tracer = notifyTracer(opts.tracing)
  const bus = app.notifyBus
  const withHistory = [...streams.values()].filter((stream) => stream.history !== undefined)
  if (withHistory.length > 0 && !app.hasDecorator('notifyHistory')) {
    throw new InvalidOptionError(`stream ${withHistory[0].name} keeps history: register the history plugin first`)
  }

  // Not async where there is no history to wait for: every message takes this path.
  function send (stream: DeclaredStream, topic: string, template: MessageTemplate, once?: OnceKey): Promise<Sent> {
    if (stream.history !== undefined) return sendDurable(topic, template, stream.history, once)
    const { id, ts } = ids.next()
    const message: BusMessage = { topic, id, frame: messageFrame(template, id, ts) }
    if (tracer !== null) message.trace = activeTraceparent()
    return bus.publish(message)
      .then((receivers) => ({ id, receivers }), (err) => mapLate(err, (receivers: number | null) => ({ id, receivers })))
  }

  async function sendDurable (topic: string, template: MessageTemplate, bounds: HistoryBounds, once?: OnceKey): Promise<Sent> {
    // Durable first: a message is on the bus only once history holds it, under the same id.
    const { store } = app.notifyHistory
    const traceparent = tracer === null ? undefined : activeTraceparent()
    let appended: AppendedMessage
    try {
      appended = await store.append(topic, template, bounds, once, traceparent)
    } catch (err) {
      return mapLate(err, sentOf)
    }
    if (store.appendPublishes || appended.replayed === true) return sentOf(appended)
    const { receivers, replayed, ...message } = appended
    if (traceparent !== undefined) message.trace = traceparent
    try {
      return { id: message.id, receivers: await bus.publish(message) }
    } catch (err) {
      return mapLate(err, (late: number | null) => ({ id: message.id, receivers: late }))
    }
  }

  const presence = presenceOf(streams, maxUsers, () =>
    app.hasDecorator('notifyPresence') ? app.notifyPresence : noPresence('the edge was registered with presence: false'))
  // The offline delivery plugin, when registered, fills in `notifyOfflineHandoff` and tells `onOffline` itself.
  app.decorate('notifyOfflineHandoff', null)
  const handOff = (users: string[], message: OfflineMessage): void => {
    const handoff = app.notifyOfflineHandoff
    if (handoff === null) offline(users, message)
    else handoff(users, message, offline)
  }
  const untraced = publisherOf(streams, maxUsers, perTopic(send, metricsOf(app)), handOff)
  const publish = tracer === null
    ? untraced
    : (input: PublishInput) => inSpan(tracer, 'notify publish', SpanKind.PRODUCER, { 'notify.stream': String(input?.stream) }, () => untraced(input))
  // The control plugin, registered after this one, puts its own methods in place of these.
  app.decorate('notify', { streams, publish, presence, ...noControl('register the control plugin') } as Notify)
  app.decorate('notifyTracer', tracer)
}

/** The active span's `traceparent` (the publish span, in a traced publish). */
function activeTraceparent (): string | undefined {
  const span = trace.getSpan(context.active())
  return span === undefined ? undefined : traceparentOf(span)
}

function sentOf ({ id, receivers, replayed }: AppendedMessage): Sent {
  return replayed === true ? { id, receivers: receivers ?? null, replayed } : { id, receivers: receivers ?? null }
}

export const notify = fp(fastifyNotify, {
  fastify: '5.x',
  name: 'notify-edge-notify',
  dependencies: ['notify-edge-bus']
})
export default notify
