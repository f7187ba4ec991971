import type { FastifyBaseLogger } from 'fastify'
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream'
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node'
import { within } from '../util.js'
import { AckBatch } from './acks.js'
import type { JetStreamRejectReason } from './message.js'

// The connection and consume loop of the JetStream ingress: connects (and reconnects) in the
// background, creates the stream and the durable consumer when told to, hands each message to
// `handle` (in order per subject, up to `prefetch` at once), and drains on close.

export interface RunnerSettings {
  connection: NodeConnectionOptions
  prefix: string
  stream: string
  consumer: string
  deadLetterStream: string | undefined
  setup: boolean
  prefetch: number
  retryDelay: number
  log: FastifyBaseLogger
  /** Acks, naks or terminates the message itself; never rejects. */
  handle: (msg: JsMsg) => Promise<void>
}

type State = 'connecting' | 'consuming' | 'reconnecting' | 'closed'

export class JetStreamRunner {
  connection: NatsConnection | null = null
  readonly #s: RunnerSettings
  #state: State = 'connecting'
  #connected = false
  #js: JetStreamClient | null = null
  #messages: ConsumerMessages | null = null
  #loop: Promise<void> = Promise.resolve()
  readonly #inFlight = new Set<Promise<void>>()
  /** The last message under way per subject: the next one of that subject waits for it. */
  readonly #tails = new Map<string, Promise<void>>()
  /** The consume loop, waiting for one of the `prefetch` messages under way to finish. */
  #slotFree: (() => void) | null = null
  #wake: (() => void) | null = null
  readonly #acks: AckBatch

  constructor (settings: RunnerSettings) {
    this.#s = settings
    this.#acks = new AckBatch((err, msg) =>
      settings.log.warn({ err, subject: msg.subject.slice(0, 255), seq: msg.seq }, 'notify edge: JetStream ack not sent; the server redelivers the message'))
  }

  /** Acks a message whose publish succeeded, with the others of this event-loop turn (see AckBatch). */
  ack (msg: JsMsg): void {
    this.#acks.ack(msg)
  }

  health (): State {
    return this.#state === 'consuming' && !this.#connected ? 'reconnecting' : this.#state
  }

  start (): void {
    this.#loop = this.#run()
  }

  async close (timeout: number): Promise<void> {
    this.#state = 'closed'
    this.#wake?.()
    // Stop pulling; what is under way finishes (or is redelivered once its ack wait passes).
    await this.#messages?.close().catch(() => {})
    await within(timeout, Promise.all([this.#loop, ...this.#inFlight]))
    await this.#acks.sent()
    const nc = this.connection
    if (nc !== null && await within(timeout, nc.close()) === null) this.#s.log.warn('notify edge: NATS connection did not close in time')
  }

  #closed (): boolean {
    return this.#state === 'closed'
  }

  async #run (): Promise<void> {
    // Loaded here, not at import: an app that never consumes JetStream does not pay for the client.
    const [{ connect }, jetstreamModule] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')])
    while (!this.#closed()) {
      try {
        if (this.connection === null) {
          this.connection = await connect({ name: 'notify-edge', maxReconnectAttempts: -1, reconnectTimeWait: 1000, ...this.#s.connection })
          this.#connected = true
          this.#watch(this.connection)
          this.#js = jetstreamModule.jetstream(this.connection)
        }
        if (this.#s.setup) await this.#provision(jetstreamModule)
        const consumer = await this.#js!.consumers.get(this.#s.stream, this.#s.consumer)
        this.#messages = await consumer.consume({ max_messages: this.#s.prefetch })
        if (this.#state !== 'consuming') this.#s.log.info('notify edge: consuming from JetStream')
        if (this.#closed()) break
        this.#state = 'consuming'
        for await (const msg of this.#messages) {
          if (this.#inFlight.size >= this.#s.prefetch) await new Promise<void>((resolve) => { this.#slotFree = resolve })
          this.#schedule(msg)
          if (this.#closed()) break
        }
      } catch (err) {
        if (this.#closed()) break
        this.#s.log.warn({ err }, 'notify edge: JetStream consumer failed; it retries')
      }
      if (this.#closed()) break
      if (this.#state === 'consuming') this.#state = 'reconnecting'
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#s.retryDelay)
        this.#wake = () => { clearTimeout(timer); resolve() }
      })
    }
  }

  /** Follows the connection's ups and downs for `health()`; the client reconnects by itself. */
  #watch (nc: NatsConnection): void {
    (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.#connected = false
        if (status.type === 'reconnect') this.#connected = true
      }
    })().catch(() => {})
  }

  async #provision ({ jetstreamManager, AckPolicy, RetentionPolicy, StorageType }: typeof import('@nats-io/jetstream')): Promise<void> {
    const jsm = await jetstreamManager(this.connection!)
    const { stream, consumer, prefix, deadLetterStream } = this.#s
    const ensureStream = async (name: string, subjects: string[], workQueue: boolean): Promise<void> => {
      try {
        await jsm.streams.info(name)
      } catch {
        await jsm.streams.add({ name, subjects, storage: StorageType.File, retention: workQueue ? RetentionPolicy.Workqueue : RetentionPolicy.Limits })
      }
    }
    await ensureStream(stream, [`${prefix}.>`], true)
    if (deadLetterStream !== undefined) await ensureStream(deadLetterStream, [`${deadLetterStream}.>`], false)
    try {
      await jsm.consumers.info(stream, consumer)
    } catch {
      await jsm.consumers.add(stream, { durable_name: consumer, ack_policy: AckPolicy.Explicit, max_ack_pending: 10 * this.#s.prefetch })
    }
  }

  /** Runs `handle` after the subject's previous message (the caller keeps at most `prefetch` under way). */
  #schedule (msg: JsMsg): void {
    const subject = msg.subject
    const before = this.#tails.get(subject)
    const work: Promise<void> = (before === undefined ? this.#s.handle(msg) : before.then(() => this.#s.handle(msg)))
      .catch((err: unknown) => this.#s.log.warn({ err, subject }, 'notify edge: JetStream message not settled; the server redelivers it'))
      .finally(() => {
        this.#inFlight.delete(work)
        if (this.#tails.get(subject) === work) this.#tails.delete(subject)
        // One waiter at most (the consume loop): no race over every message under way per message.
        const free = this.#slotFree
        this.#slotFree = null
        free?.()
      })
    this.#inFlight.add(work)
    this.#tails.set(subject, work)
  }

  /** Copies `msg` to `<deadLetterStream>.<reason>`, saying where it came from and why; false when that failed. */
  async deadLetter (msg: JsMsg, reason: JetStreamRejectReason): Promise<boolean> {
    const { headers } = await import('@nats-io/transport-node')
    const h = headers()
    h.set('Notify-Subject', msg.subject)
    h.set('Notify-Reason', reason)
    h.set('Notify-Stream-Sequence', String(msg.seq))
    try {
      await this.#js!.publish(`${this.#s.deadLetterStream}.${reason}`, msg.data, { headers: h })
      return true
    } catch (err) {
      this.#s.log.warn({ err }, 'notify edge: JetStream dead letter not stored; the message is redelivered')
      return false
    }
  }
}
