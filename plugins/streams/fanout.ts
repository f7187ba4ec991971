import type { FastifyBaseLogger } from 'fastify'
import type { BusMessage, NotifyBus } from '../bus/index.js'
import type { DeclaredStream } from '../declarations.js'
import type { NotifyHistory } from '../history/index.js'
import { latestAll } from '../history/store.js'
import type { NotifyMetricsRecorder, RouteStats } from '../recorder.js'
import { inRemoteChild } from '../tracing.js'
import type { Tracer } from '@opentelemetry/api'
import { frame } from './protocol.js'
import { Repairs } from './repairs.js'
import { TopicLine } from './topic-line.js'
import { OutboundFrame } from './wire.js'

const INTERNAL_ERROR = 1011
/** One message received from the bus in this many is sampled for bus lag (a power of two: a mask). */
export const BUS_LAG_SAMPLE_EVERY = 16

/** A local receiver of a topic's messages: one per socket subscription. */
export interface Subscriber {
  /** Writes an already-framed message; `message` carries its id for de-duplication. */
  deliver (frame: OutboundFrame, message: BusMessage): void
  /** Writes a `gap` frame: live messages of `stream` were lost and history could not fill the hole. */
  gap (frame: OutboundFrame, stream: string): void
  /** Writes a frame that is no message: a channel's `join` or `leave`. */
  notice? (frame: OutboundFrame): void
  /** Closes the socket: used with 1011 when a delivery to it threw, so its client resumes. */
  close (code: number, reason: string): void
}

interface TopicSubscribers {
  subscribers: Set<Subscriber>
  listener: (message: BusMessage) => void
  ready: Promise<void>
  line: TopicLine
  stream: DeclaredStream
}

/** What a route's fan-out needs besides the bus. */
export interface FanoutContext {
  /** Null when the history plugin is not registered: every hole is then a gap. */
  history: NotifyHistory | null
  log: FastifyBaseLogger
  stats: RouteStats
  /** Where sampled bus lag goes. @default no metrics */
  metrics?: Pick<NotifyMetricsRecorder, 'busLag'>
  /** Traces deliveries of traced messages when set. @default null */
  tracer?: Tracer | null
}

/**
 * Maps bus topics to the local sockets that want them. One bus listener per topic, whatever the
 * number of sockets; each message is framed once, and that frame is shared by every socket's write.
 *
 * It also keeps each topic's delivery whole: a message whose predecessor is not the last one
 * delivered, or a re-subscription of the bus, sends the topic to `Repairs`, which reads the hole
 * from history once for all its sockets (or announces a `gap`) while its live messages wait.
 */
export class Fanout {
  readonly #topics = new Map<string, TopicSubscribers>()
  readonly #repairs: Repairs
  readonly #offResubscribe: () => void
  #received = 0
  /** Lines gone live this turn whose latest id is still to be read. */
  #starting: TopicLine[] = []

  constructor (private readonly bus: NotifyBus, private readonly ctx: FanoutContext) {
    this.#repairs = new Repairs(ctx.history, ctx.log, ctx.stats)
    this.#repairs.tracer = ctx.tracer ?? null
    this.#offResubscribe = bus.onResubscribe(() => this.#resubscribed())
  }

  /** The tracer of traced deliveries, null when tracing is off. */
  get tracer (): Tracer | null {
    return this.ctx.tracer ?? null
  }

  /** Topics with at least one local subscriber. */
  get size (): number {
    return this.#topics.size
  }

  /** Resolves once the topic is live on the bus; `name` is what its frames call it (a channel's `room:lobby`). */
  add (topic: string, subscriber: Subscriber, stream: DeclaredStream, name = stream.name): Promise<void> {
    let entry = this.#topics.get(topic)
    if (entry === undefined) entry = this.#open(topic, stream, name)
    entry.subscribers.add(subscriber)
    return entry.ready
  }

  remove (topic: string, subscriber: Subscriber): Promise<void> {
    const entry = this.#topics.get(topic)
    if (entry === undefined || !entry.subscribers.delete(subscriber) || entry.subscribers.size > 0) {
      return Promise.resolve()
    }
    this.#topics.delete(topic)
    entry.line.closed = true
    return this.bus.unsubscribe(topic, entry.listener)
  }

  /** The kind of the stream a topic with local subscribers belongs to, for metrics labels. */
  kindOf (topic: string): string {
    return this.#topics.get(topic)?.stream.kind ?? 'unknown'
  }

  /** Writes `frame` to every local subscriber of `topic`, if any. */
  notice (topic: string, frame: OutboundFrame): void {
    const entry = this.#topics.get(topic)
    if (entry === undefined) return
    for (const subscriber of entry.subscribers) subscriber.notice?.(frame)
  }

  /** Stops listening for re-subscriptions of the bus, and repairing. */
  close (): void {
    this.#offResubscribe()
    this.#repairs.close()
  }

  #open (topic: string, stream: DeclaredStream, name: string): TopicSubscribers {
    const subscribers = new Set<Subscriber>()
    const { stats, log, metrics } = this.ctx
    const tracer = this.ctx.tracer ?? null
    const gapFrame = new OutboundFrame(frame('gap', { streams: [name] }))
    const writeAll = (message: BusMessage): void => {
      const outbound = new OutboundFrame(message.frame)
      for (const subscriber of subscribers) {
        // One socket's failure must not cost the others this message, nor pass unnoticed by its client.
        try {
          subscriber.deliver(outbound, message)
        } catch (err) {
          log.error({ err, topic }, 'notify delivery to a socket failed: closing it')
          subscriber.close(INTERNAL_ERROR, 'internal error')
        }
      }
    }
    const line: TopicLine = new TopicLine(topic, stream.history, {
      deliver (message) {
        // One span per topic delivery (not per socket), in the publisher's trace.
        if (tracer === null || message.trace === undefined) return writeAll(message)
        inRemoteChild(tracer, 'notify deliver', message.trace, { 'notify.stream': stream.name, 'notify.sockets': subscribers.size }, () => writeAll(message))
      },
      gap () {
        stats.gaps++
        for (const subscriber of subscribers) subscriber.gap(gapFrame, name)
      },
      repair: (since) => this.#repairs.run(line, since, stream.name)
    })
    const listener = (message: BusMessage): void => {
      if (metrics !== undefined && (++this.#received & (BUS_LAG_SAMPLE_EVERY - 1)) === 0) metrics.busLag(message.id, stream.kind)
      line.receive(message)
    }
    const ready = this.bus.subscribe(topic, listener)
    const entry = { subscribers, listener, ready, line, stream }
    this.#topics.set(topic, entry)
    ready.then(() => this.#start(entry), () => {})
    return entry
  }

  /** Once live, learns where the topic's history stands, so a hole before any delivery shows too. */
  #start (entry: TopicSubscribers): void {
    const { line, stream } = entry
    line.live = true
    const history = this.ctx.history
    if (stream.history === undefined || history === null || line.closed) return
    line.starting = true
    // Topics that went live together (a subscribe of many streams) are asked about in one read.
    if (this.#starting.push(line) === 1) setImmediate(this.#readStarts)
  }

  readonly #readStarts = (): void => {
    const lines = this.#starting
    this.#starting = []
    latestAll(this.ctx.history!.store, lines.map((line) => line.topic)).then((latest) => {
      for (let i = 0; i < lines.length; i++) lines[i].started(latest[i])
    }, (err: unknown) => {
      this.ctx.log.debug({ err, topics: lines.length }, 'notify history: latest id unknown')
      for (const line of lines) line.started(null)
    })
  }

  #resubscribed (): void {
    for (const { line } of this.#topics.values()) line.resubscribed()
  }
}
