import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { BusMessage, NotifyBus } from '../bus/index.js'
import type { DeclaredStream } from '../declarations.js'
import { MessageIdGenerator } from '../message-id.js'
import type { PresenceStore } from '../presence/index.js'
import { membersTopic } from '../topics.js'
import type { Fanout } from './fanout.js'
import { frame } from './protocol.js'
import { OutboundFrame } from './wire.js'

/** One channel key with member presence that this route's sockets subscribe to. */
interface Watched {
  /** The channel key's topic, whose local subscribers get the join / leave frames. */
  topic: string
  /** Local subscriptions to it. */
  count: number
  /** Its members as last read; null before the first read (which announces nothing). */
  members: Set<string> | null
  reading: boolean
  again: boolean
  listener: (message: BusMessage) => void
}

/**
 * Join and leave frames for the channels that declare member presence (SPEC section 12), once per
 * user across all their connections and all instances. The members of a channel key are what
 * presence says across instances; each instance holding subscribers of the key keeps the set it
 * last read and announces the difference to them. It reads again when a user's first connection
 * on any instance joins or their last one leaves (that instance says so on the bus, once its
 * presence is written), and every `sweepInterval` ms, so that the members of an instance that
 * died (SIGKILL) leave once presence stops counting it.
 */
export class MemberWatch {
  readonly #watched = new Map<string, Watched>()
  readonly #ids = new MessageIdGenerator()
  readonly #sweep: NodeJS.Timeout
  readonly #onMember = (name: string, user: string): void => this.#changed(name, user)

  constructor (
    private readonly streams: ReadonlyMap<string, DeclaredStream>,
    private readonly store: PresenceStore,
    private readonly bus: NotifyBus,
    private readonly fanout: Fanout,
    private readonly log: FastifyBaseLogger,
    sweepInterval: number
  ) {
    store.tracker.memberListeners.add(this.#onMember)
    this.#sweep = setInterval(() => { for (const name of this.#watched.keys()) this.#read(name) }, sweepInterval)
    this.#sweep.unref()
  }

  /** The channel stream of `name` (`room:lobby`) when it declares member presence. */
  #declared (name: string): DeclaredStream | undefined {
    const colon = name.indexOf(':')
    const stream = colon < 0 ? undefined : this.streams.get(name.slice(0, colon))
    return stream?.members === true ? stream : undefined
  }

  /** A local socket subscribed to `name`, a key of a channel with member presence. */
  add (name: string, topic: string): void {
    const watched = this.#watched.get(name)
    if (watched !== undefined) {
      watched.count++
      return
    }
    const listener = (): void => this.#read(name)
    this.#watched.set(name, { topic, count: 1, members: null, reading: false, again: false, listener })
    this.bus.subscribe(membersTopic(topic), listener).then(() => this.#read(name), (err: unknown) => {
      this.log.warn({ err, stream: name }, 'notify members: not watching other instances\' joins')
    })
  }

  remove (name: string): void {
    const watched = this.#watched.get(name)
    if (watched === undefined || --watched.count > 0) return
    this.#watched.delete(name)
    this.bus.unsubscribe(membersTopic(watched.topic), watched.listener).catch(() => {})
  }

  close (): void {
    clearInterval(this.#sweep)
    this.store.tracker.memberListeners.delete(this.#onMember)
    for (const [name, watched] of this.#watched) {
      this.#watched.delete(name)
      this.bus.unsubscribe(membersTopic(watched.topic), watched.listener).catch(() => {})
    }
  }

  /** A user's first local connection joined `name`, or their last left: tell every instance once it is readable. */
  #changed (name: string, user: string): void {
    const stream = this.#declared(name)
    if (stream === undefined) return
    const topic = stream.topic(name.slice(stream.name.length + 1))
    const flushed = this.store.flushed?.() ?? Promise.resolve()
    flushed.then(() => {
      const { id } = this.#ids.next()
      return this.bus.publish({ topic: membersTopic(topic), id, frame: '' })
    }).catch((err: unknown) => {
      // Other instances still learn of it at their next sweep.
      this.log.debug({ err, stream: name, user }, 'notify members: change not announced')
    })
    if (this.#watched.has(name)) this.#read(name)
  }

  /** Reads the members of `name` and announces who joined and who left since the last read. */
  #read (name: string): void {
    const watched = this.#watched.get(name)
    if (watched === undefined) return
    if (watched.reading) {
      watched.again = true
      return
    }
    watched.reading = true
    watched.again = false
    const flushed = this.store.flushed?.() ?? Promise.resolve()
    flushed.then(() => this.store.stream(name, true)).then(({ members }) => {
      if (this.#watched.get(name) === watched) this.#announce(name, watched, new Set(members))
    }, (err: unknown) => {
      this.log.debug({ err, stream: name }, 'notify members: presence not read; trying at the next change or sweep')
    }).finally(() => {
      watched.reading = false
      if (watched.again) this.#read(name)
    })
  }

  #announce (name: string, watched: Watched, now: Set<string>): void {
    const before = watched.members
    watched.members = now
    if (before === null) return
    for (const user of now) {
      if (!before.has(user)) this.fanout.notice(watched.topic, new OutboundFrame(frame('join', { stream: name, user })))
    }
    for (const user of before) {
      if (!now.has(user)) this.fanout.notice(watched.topic, new OutboundFrame(frame('leave', { stream: name, user })))
    }
  }
}

/**
 * A route's member watch (closed with the app), or null when no channel declares member presence
 * or presence is not registered. The WebSocket and SSE routes each build theirs on their fanout.
 */
export function memberWatch (app: FastifyInstance, fanout: Fanout, sweepInterval: number): MemberWatch | null {
  const withMembers = [...app.notify.streams.values()].some((stream) => stream.members)
  if (!withMembers || !app.hasDecorator('notifyPresence')) return null
  const members = new MemberWatch(app.notify.streams, app.notifyPresence, app.notifyBus, fanout, app.log, sweepInterval)
  app.addHook('onClose', async () => members.close())
  return members
}
