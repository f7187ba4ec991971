import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { WebSocket, RawData } from 'ws'
import type { BusMessage } from '../bus/index.js'
import type { NotifyHistory } from '../history/index.js'
import type { PresenceReporter } from '../presence/index.js'
import type { DeclaredStream } from '../declarations.js'
import type { Inbound } from '../inbound.js'
import { isMessageId } from '../message-id.js'
import { principalFromJwt, type Principal } from '../principal.js'
import { refuseRevoked, type ControlledConnection, type ServerFrame } from '../control-hooks.js'
import { MAX_NAME_ECHO, authorizeKey, isUnresolved, resolveTarget, type Target } from './channels.js'
import type { Fanout, Subscriber } from './fanout.js'
import type { MemberWatch } from './members.js'
import { Admission, admission, frameDue, type AdmissionResult, type Closable, type RouteLimits } from './limits.js'
import { Missed } from './missed.js'
import { Resume, readPositions, readReplays, type PlannedReplay } from './resume.js'
import type { RouteStats } from '../recorder.js'
import { FrameError, errorFrame, frame, parseClientFrame, type ClientFrame, type CorrelationId, type StreamRequest } from './protocol.js'
import { FrameWriter, OutboundFrame, type FlushScheduler } from './wire.js'
import { sharedArray } from '../util.js'
import type { Watched } from './heartbeat.js'

/** What every connection of one streams route shares. */
export interface RouteContext {
  app: FastifyInstance
  fanout: Fanout
  anonymous: boolean
  maxSubscriptions: number
  /** Null when the history plugin is not registered: every resume is then a gap. */
  history: NotifyHistory | null
  log: FastifyBaseLogger
  limits: RouteLimits
  stats: RouteStats
  /** Called instead of writing when the socket is over `limits.maxBufferedBytes`. */
  onSlowConsumer: (connection: Closable) => void
  /** Sees one delivery in `LAG_SAMPLE_EVERY`, to measure publish-to-write lag. */
  sampleLag: (message: BusMessage) => void
  /** When the route's corked sockets are written out (`flushInterval`). */
  flushes: FlushScheduler
  /** Told of connects, subscriptions and disconnects (never of deliveries); null without presence. */
  presence: PresenceReporter | null
  /** Join and leave frames of channels with member presence; null without presence or such channels. */
  members: MemberWatch | null
  /** Called once a connection's socket has closed and its subscriptions are released. */
  released: (connection: Connection) => void
  /** Serves client publishes and RPCs (the upstream plugin); null without it. */
  inbound: Inbound | null
}

/** One delivery in this many is sampled for lag (a power of two: the test is a mask). */
export const LAG_SAMPLE_EVERY = 64

// An expiry timer is armed only once the expiry is this close: an idle connection holding a
// long-lived credential then costs no timer. The route calls checkExpiry() more often than this.
export const EXPIRY_WINDOW_MS = 60_000

/** A route's sweep: every half window, each of its connections arms its expiry timer if due. Unref'd; the route clears it on close. */
export function sweepExpiries (connections: Iterable<{ checkExpiry: () => void }>): NodeJS.Timeout {
  return setInterval(() => {
    for (const connection of connections) connection.checkExpiry()
  }, EXPIRY_WINDOW_MS / 2).unref()
}
const SETTLED = Promise.resolve()

/** A connection's `closed` promise and what settles it. */
interface Released { promise: Promise<void>, resolve: () => void }
const RELEASED: Released = { promise: SETTLED, resolve: () => {} }

/**
 * What few connections ever need, kept apart: an idle connection holds one null instead of three
 * fields. The expiry timer is armed only within EXPIRY_WINDOW_MS of the credential's expiry.
 */
class Seldom {
  expiryTimer: NodeJS.Timeout | null = null
  // `closed`, made only once asked for (the drain, tests).
  released: Released | null = null
  // Frames that failed to parse.
  badFrames = 0
}

function released (): Released {
  let settle!: () => void
  const promise = new Promise<void>((resolve) => { settle = resolve })
  return { promise, resolve: settle }
}

// Idle connections are what an edge holds most of, so each keeps as little as it can: its socket's
// listeners are functions shared by every connection, not closures of its own (a closure and its
// context per listener cost more), that find the connection under this key on the socket (a
// property costs less than a WeakMap entry).
const CONNECTION = Symbol('notify-edge connection')
type Owned = WebSocket & { [CONNECTION]: Connection }
// Connection ids are this process's random prefix and a serial number, made when asked for (the
// welcome frame, a log line): a connection keeps a small integer instead of a 36-character string.
const PROCESS = randomUUID().slice(0, 13)
let serials = 0
const NONE: readonly string[] = Object.freeze([])
// Most connections are on one public stream: they share its [name, topic] pair (about 60 bytes
// each). Keyed by public topic, so bounded by the declared streams; private topics are per user.
const PUBLIC_PAIRS = new Map<string, readonly string[]>()

/** `subscribed` with one more pair; arrays are replaced, never changed, so they can be shared. */
function withPair (subscribed: readonly string[], stream: DeclaredStream, topic: string, name: string): readonly string[] {
  // concat() makes an array of the exact size; spreading over-allocates.
  if (subscribed.length > 0 || stream.kind !== 'public') return subscribed.concat(name, topic)
  return sharedArray(PUBLIC_PAIRS, topic, name, topic)
}

export const CLOSE = {
  GOING_AWAY: 1001,
  POLICY: 1008,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
  EXPIRED: 4001,
  FORBIDDEN: 4003
} as const

/**
 * One open socket: its principal, its subscriptions and the protocol it speaks. It is its socket's
 * frame writer too (it extends `FrameWriter`), so that an idle connection is one object, not two.
 */
export class Connection extends FrameWriter implements Subscriber, Watched, ControlledConnection {
  /** What the socket had read at the heartbeat's last sweep, whether it pinged, whether the client sent frames since (see Heartbeat). */
  readAtPing = -1
  pinged = false
  talked = false

  /** What few connections need, made on first need (`#more()`). */
  #more (): Seldom {
    this.#seldom ??= new Seldom()
    return this.#seldom
  }

  /** Unique across processes: the welcome frame's `connection`. */
  get id (): string { return `${PROCESS}${this.#serial.toString(36)}` }

  readonly #serial = ++serials
  // Subscribed streams as [name, topic, name, topic, …], replaced on change: a connection holds a
  // few, and a Map costs about 180 bytes even with one entry.
  #subscribed = NONE
  #principal: Principal
  // Frames are handled one after another, so a subscribe is answered before a later unsubscribe.
  // Back to SETTLED once the queue is empty, so that an idle connection holds no promise.
  #queue: Promise<void> = SETTLED
  #closed = false
  // The inbound frame rate's bucket (see `frameDue`).
  #frameDue = 0
  #seldom: Seldom | null = null
  // Topics whose live messages wait while their history is read; null on the hot path.
  #resuming: Map<string, Resume> | null = null
  // What this socket missed while over its buffer limit (slowConsumer 'drop'); null on the hot path.
  #missed: Missed | null = null

  constructor (socket: WebSocket, principal: Principal, private readonly ctx: RouteContext) {
    super(socket, ctx.flushes)
    this.#principal = principal
    ;(socket as Owned)[CONNECTION] = this
    socket.on('close', Connection.#onSocketClose)
    socket.on('message', Connection.#onSocketMessage)
    this.send(frame('welcome', { connection: this.id, user: principal.user, expiresAt: principal.expiresAt }))
    ctx.presence?.connected(principal.user)
    this.#armExpiry()
  }

  get principal (): Principal {
    return this.#principal
  }

  /** Subscribed stream name → bus topic (a copy, for inspection). */
  get topics (): ReadonlyMap<string, string> {
    const topics = new Map<string, string>()
    for (let i = 0; i < this.#subscribed.length; i += 2) topics.set(this.#subscribed[i], this.#subscribed[i + 1])
    return topics
  }

  /** How many streams this connection subscribes to. */
  get subscriptions (): number {
    return this.#subscribed.length / 2
  }

  #topicOf (name: string): string | undefined {
    const at = this.#indexOf(name, 0)
    return at < 0 ? undefined : this.#subscribed[at + 1]
  }

  /** Where `value` is as a name (`side` 0) or a topic (1): the index of its pair, or -1. */
  #indexOf (value: string, side: 0 | 1): number {
    for (let i = 0; i < this.#subscribed.length; i += 2) if (this.#subscribed[i + side] === value) return i
    return -1
  }

  /** Settles once the socket has closed and every subscription it held is released. */
  get closed (): Promise<void> {
    const seldom = this.#more()
    seldom.released ??= released()
    return seldom.released.promise
  }

  static readonly #onSocketClose = function (this: WebSocket): void {
    (this as Owned)[CONNECTION].#onClose()
  }

  static readonly #onSocketMessage = function (this: WebSocket, data: RawData, isBinary: boolean): void {
    (this as Owned)[CONNECTION].#onMessage(data, isBinary)
  }

  /** Releases what the connection holds, then tells the route and whoever waits on `closed`. */
  #onClose (): void {
    this.#release().catch((err: unknown) => this.ctx.log.error({ err }, 'releasing a connection failed')).finally(() => {
      this.ctx.released(this)
      const waiting = this.#seldom?.released
      if (waiting == null) this.#more().released = RELEASED
      else waiting.resolve()
    })
  }

  /** Sends a control frame now; whatever fan-out holds corked for this socket goes out first, in the same write. */
  send (text: string): void {
    this.sendNow(text)
  }

  /** An RPC's result, written as fan-out is (see `InboundCaller.sendBatched`); dropped once the socket has closed. */
  sendBatched (text: string): void {
    if (this.#closed) return
    this.write(new OutboundFrame(text))
  }

  deliver (outbound: OutboundFrame, message: BusMessage): void {
    if (this.#resuming !== null) {
      const resume = this.#resuming.get(message.topic)
      if (resume !== undefined) {
        if (!resume.admit(outbound.payload, message)) return
        this.#endResume(message.topic)
      }
    }
    const ctx = this.ctx
    if (this.#missed !== null) {
      // A backlog under half the limit has drained, even if the TCP socket never needed 'drain'.
      if (this.socket.bufferedAmount <= ctx.limits.maxBufferedBytes / 2) {
        this.#catchUp()
        return this.deliver(outbound, message)
      }
      if (this.#missed.topics.has(message.topic)) return this.#drop(message)
    }
    if (this.socket.bufferedAmount > ctx.limits.maxBufferedBytes) return this.#drop(message)
    this.write(outbound)
    if ((++ctx.stats.delivered & (LAG_SAMPLE_EVERY - 1)) === 0) ctx.sampleLag(message)
  }

  gap (outbound: OutboundFrame): void {
    this.write(outbound)
  }

  notice (outbound: OutboundFrame): void {
    this.write(outbound)
  }

  #drop (message: BusMessage): void {
    this.ctx.onSlowConsumer(this)
    if (this.ctx.limits.slowConsumer !== 'drop' || this.#closed) return
    this.#missed ??= new Missed(this.socket, () => this.#catchUp())
    this.#missed.add(message)
  }

  /**
   * The socket drained after missing messages: each stream replays them from history, holding its
   * live messages meanwhile as a resume does, or gets a `gap` when history cannot.
   */
  #catchUp (): void {
    const missed = this.#missed
    if (missed === null) return
    this.#missed = null
    missed.stop()
    const gaps: string[] = []
    const planned: PlannedReplay[] = []
    const named: string[] = []
    for (const [topic, since] of missed.topics) {
      const name = this.#streamOf(topic)
      if (name === undefined) continue
      const { stream } = resolveTarget(this.ctx.app.notify.streams, name) as Target
      if (since === null || stream.history === undefined || this.ctx.history === null || this.#resuming?.has(topic) === true) {
        gaps.push(name)
        continue
      }
      const resume = new Resume(topic, since)
      this.#resuming ??= new Map()
      this.#resuming.set(topic, resume)
      planned.push({ stream, resume })
      named.push(name)
    }
    if (gaps.length > 0) this.write(new OutboundFrame(frame('gap', { streams: gaps })))
    if (planned.length === 0) return
    this.#replay(planned).then(() => {
      for (let i = 0; i < planned.length; i++) {
        const { resume } = planned[i]
        if (this.#closed || this.#resuming?.get(resume.topic) !== resume) continue
        if (resume.replay === null) this.send(frame('gap', { streams: [named[i]] }))
        if (!resume.finish(this.socket)) this.#endResume(resume.topic)
      }
    })
  }

  #streamOf (topic: string): string | undefined {
    const at = this.#indexOf(topic, 1)
    return at < 0 ? undefined : this.#subscribed[at]
  }

  /** Closes with `code` once what fan-out holds corked is written (drain and slow consumers too). */
  close (code: number, reason: string): void {
    this.flush()
    this.socket.close(code, reason)
  }

  async #release (): Promise<void> {
    this.#closed = true
    this.#missed?.stop()
    this.#missed = null
    const timer = this.#seldom?.expiryTimer
    if (timer != null) clearTimeout(timer)
    const subscribed = this.#subscribed
    this.#subscribed = NONE
    const { presence } = this.ctx
    const { user } = this.#principal
    const released: Array<Promise<void>> = []
    for (let i = 0; i < subscribed.length; i += 2) {
      presence?.unsubscribed(user, subscribed[i], this.#isCounted(subscribed[i]))
      this.ctx.members?.remove(subscribed[i])
      released.push(this.ctx.fanout.remove(subscribed[i + 1], this))
    }
    presence?.disconnected(user)
    await Promise.all(released)
  }

  /** Arms the expiry timer if the credential expires within the window and none is armed yet. */
  checkExpiry (): void {
    if (this.#seldom?.expiryTimer == null && !this.#closed) this.#armExpiry()
  }

  #armExpiry (): void {
    const armed = this.#seldom?.expiryTimer
    if (armed != null) {
      clearTimeout(armed)
      this.#seldom!.expiryTimer = null
    }
    const { expiresAt } = this.#principal
    if (expiresAt === null) return
    const delay = expiresAt - Date.now()
    if (delay <= 0) {
      this.close(CLOSE.EXPIRED, 'credential expired')
      return
    }
    if (delay > EXPIRY_WINDOW_MS) return
    const timer = setTimeout(() => this.#armExpiry(), delay)
    timer.unref()
    this.#more().expiryTimer = timer
  }

  #onMessage (data: RawData, isBinary: boolean): void {
    this.talked = true
    const rate = this.ctx.limits.frameRate
    if (rate !== null) {
      const now = performance.now()
      this.#frameDue = frameDue(this.#frameDue, rate, now)
      const admitted = admission(this.#frameDue, rate, now)
      if (admitted !== Admission.OK) return this.#refuse(admitted)
    }
    let parsed: ClientFrame
    try {
      parsed = parseClientFrame(data, isBinary, this.ctx.maxSubscriptions)
    } catch (err) {
      const { code, message, id } = err as FrameError
      this.ctx.stats.badFrames++
      this.send(errorFrame(code, message, { id }))
      if (++this.#more().badFrames >= this.ctx.limits.maxBadFrames) this.#policyClose('too many bad frames')
      return
    }
    // A call runs beside the queue: a slow method must not hold the socket's other frames.
    if (parsed.event === 'rpc') return this.#rpc(parsed)
    this.enqueue(parsed)
  }

  /** Handles `parsed` after the frames before it: the client's own, or one the server makes for it (control). */
  enqueue (parsed: ClientFrame | ServerFrame): void {
    // Two promises a frame, not three: the queue settles in both branches of one `then`.
    const settle = (): void => {
      if (this.#queue === queue) this.#queue = SETTLED
    }
    const queue: Promise<void> = this.#queue.then(() => this.#handle(parsed)).then(settle, (err: unknown) => {
      settle()
      this.ctx.log.error({ err, connection: this.id }, 'notify frame handling failed')
      this.close(CLOSE.INTERNAL, 'internal error')
    })
    this.#queue = queue
  }

  #refuse (admission: AdmissionResult): void {
    if (admission === Admission.ABUSE) return this.#policyClose('frame rate abuse')
    this.ctx.stats.rateLimited++
    this.send(errorFrame('RATE_LIMITED', 'too many frames: slow down'))
  }

  #policyClose (reason: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return
    this.ctx.stats.policyCloses++
    this.close(CLOSE.POLICY, reason)
  }

  async #handle (message: ClientFrame): Promise<void> {
    if (this.#closed) return
    switch (message.event) {
      case 'subscribe':
        return this.#subscribe(message.streams, message.id)
      case 'unsubscribe':
        return this.#unsubscribe(message.streams, message.id)
      case 'ping':
        return this.send(frame('pong', { id: message.id }))
      case 'refresh':
        return this.#refresh(message.token, message.id)
      case 'publish':
        // In the queue: a socket's publishes reach the bus in the order sent.
        if (this.ctx.inbound === null) return this.send(errorFrame('FORBIDDEN', 'clients may not publish here', { id: message.id }))
        return this.ctx.inbound.publish(this, message)
    }
  }

  #rpc (message: Extract<ClientFrame, { event: 'rpc' }>): void {
    if (this.#closed) return
    if (this.ctx.inbound === null) return this.send(errorFrame('FORBIDDEN', 'no methods are served here', { id: message.id }))
    this.ctx.inbound.rpc(this, message)
  }

  /** The declared stream (and a channel's key), or an error frame saying why it cannot be used here. */
  #lookup (name: string, id: CorrelationId): Target | undefined {
    const target = resolveTarget(this.ctx.app.notify.streams, name)
    if (isUnresolved(target)) {
      this.send(errorFrame(target.code, target.message, { stream: name.slice(0, MAX_NAME_ECHO), id }))
      return undefined
    }
    const { stream } = target
    if (this.#principal.user === null && (stream.kind === 'private' || (stream.kind === 'channel' && !stream.anonymous))) {
      this.send(errorFrame('FORBIDDEN', `${stream.kind} streams need an authenticated connection`, { stream: name, id }))
      return undefined
    }
    return target
  }

  /** Starts every channel key's authorization of one frame at once, so slow hooks wait side by side. */
  #authorizeKeys (targets: Array<Target | undefined>, names: string[]): Array<Promise<boolean> | null> {
    return targets.map((target, i) => target?.key == null || this.#topicOf(names[i]) !== undefined
      ? null
      : target.stream.remoteAuthorize !== null
        // A backend decides (the upstream plugin asks it, or reuses this connection's recent yes).
        ? this.ctx.inbound!.authorizeKey(this, { stream: target.stream.name, key: target.key })
        : authorizeKey(target.stream, this.#principal, target.key, this.ctx.log))
  }

  /**
   * Authorizes each stream in turn, then reads, for all of them at once: the positions of those
   * subscribed afresh (before their live delivery starts, so every message the socket will get
   * is newer), the bus subscriptions, and the replays of those resumed (after their live
   * delivery started, held meanwhile). Two requests to history per frame, however many streams.
   */
  async #subscribe (requests: StreamRequest[], id: CorrelationId): Promise<void> {
    const accepted: string[] = []
    const opened: Array<{ stream: DeclaredStream, topic: string, name: string, subscribedName: string, since: string | undefined }> = []
    let resuming = false
    const names = requests.map((request) => request.stream)
    const targets = names.map((name) => this.#lookup(name, id))
    const keyDecisions = this.#authorizeKeys(targets, names)
    for (let i = 0; i < requests.length; i++) {
      const target = targets[i]
      if (target === undefined) continue
      const { stream: name, since } = requests[i]
      const { stream, key } = target
      if (since !== undefined) resuming = true
      // A stream this connection already receives live has nothing to resume: `since` is ignored.
      if (this.#topicOf(name) === undefined) {
        const decision = keyDecisions[i]
        const allowed = decision !== null
          ? await decision
          : stream.authorize === undefined || await (stream.authorize as (principal: Principal, stream: string) => boolean | Promise<boolean>)(this.#principal, name)
        if (!allowed) {
          this.send(errorFrame('FORBIDDEN', 'not allowed to subscribe', { stream: name, id }))
          continue
        }
        if (this.#closed) return
        if (this.subscriptions >= this.ctx.maxSubscriptions) {
          this.send(errorFrame('TOO_MANY_SUBSCRIPTIONS', `at most ${this.ctx.maxSubscriptions} subscriptions`, { stream: name, id }))
          continue
        }
        const topic = stream.topic(key ?? this.#principal.user)
        // The declared name, not the frame's copy of it: one string for every connection.
        const subscribedName = key === null ? stream.name : name
        this.#subscribed = withPair(this.#subscribed, stream, topic, subscribedName)
        this.ctx.presence?.subscribed(this.#principal.user, subscribedName, stream.kind !== 'private')
        if (stream.members) this.ctx.members?.add(subscribedName, topic)
        opened.push({ stream, topic, name, subscribedName, since })
      }
      if (!accepted.includes(name)) accepted.push(name)
    }
    const positions = await this.#positions(opened.filter((o) => o.since === undefined))
    if (this.#closed) return
    const history = this.ctx.history
    const resumes: Resume[] = []
    const planned: PlannedReplay[] = []
    for (const { stream, topic, since } of opened) {
      if (since === undefined) continue
      const resume = new Resume(topic, since)
      resumes.push(resume)
      // `since: ''` asks for the topic from its start (an SSE response on a topic that was empty when it opened).
      if (stream.history === undefined || history === null || (since !== '' && !isMessageId(since))) continue
      // Held from before its live delivery starts.
      this.#resuming ??= new Map()
      this.#resuming.set(topic, resume)
      planned.push({ stream, resume })
    }
    await Promise.all(opened.map(({ stream, topic, subscribedName }) => this.ctx.fanout.add(topic, this, stream, subscribedName)))
    await this.#replay(planned)
    if (this.#closed) return
    const gaps = opened.filter((o) => o.since !== undefined).flatMap((o, i) => resumes[i].replay === null ? [o.name] : [])
    // `subscribed` (with `gaps` whenever a `since` was given) comes first, then each replay.
    this.send(frame('subscribed', { streams: accepted, id, gaps: resuming ? gaps : undefined, positions }))
    for (const resume of resumes) {
      if (!resume.finish(this.socket)) this.#endResume(resume.topic)
    }
  }

  #endResume (topic: string): void {
    this.#resuming?.delete(topic)
    if (this.#resuming?.size === 0) this.#resuming = null
  }

  /**
   * Where the streams with history among `opened` stand (SPEC section 6), by the name they were
   * asked for; undefined when none has history, or history did not answer.
   */
  async #positions (opened: ReadonlyArray<{ stream: DeclaredStream, topic: string, name: string }>): Promise<Record<string, string> | undefined> {
    const history = this.ctx.history
    const withHistory = opened.filter(({ stream }) => stream.history !== undefined)
    if (history === null || withHistory.length === 0) return undefined
    try {
      const latest = await readPositions(history, withHistory.map(({ topic }) => topic))
      const positions: Record<string, string> = {}
      for (let i = 0; i < withHistory.length; i++) positions[withHistory[i].name] = latest[i]
      return positions
    } catch (err) {
      this.ctx.log.warn({ err, connection: this.id, streams: withHistory.length }, 'notify history positions not read: the subscribe carries none')
      return undefined
    }
  }

  /** Reads what each of `planned` is to replay, in one request; a history that cannot be read is a gap for each. */
  async #replay (planned: readonly PlannedReplay[]): Promise<void> {
    try {
      await readReplays(this.ctx.history!, planned, this.ctx.fanout.tracer)
    } catch (err) {
      this.ctx.log.warn({ err, connection: this.id, streams: planned.length }, 'notify history read failed: reporting a gap')
    }
  }

  async #unsubscribe (requests: StreamRequest[], id: CorrelationId): Promise<void> {
    const removed: string[] = []
    for (const { stream: name } of requests) {
      const target = resolveTarget(this.ctx.app.notify.streams, name)
      if (isUnresolved(target)) {
        this.send(errorFrame(target.code, target.message, { stream: name.slice(0, MAX_NAME_ECHO), id }))
        continue
      }
      const at = this.#indexOf(name, 0)
      if (at >= 0) {
        const topic = this.#subscribed[at + 1]
        this.#subscribed = this.#subscribed.length === 2 ? NONE : this.#subscribed.toSpliced(at, 2)
        this.ctx.presence?.unsubscribed(this.#principal.user, name, this.#isCounted(name))
        this.ctx.members?.remove(name)
        this.#endResume(topic)
        await this.ctx.fanout.remove(topic, this)
      }
      if (!removed.includes(name)) removed.push(name)
    }
    this.send(frame('unsubscribed', { streams: removed, id }))
  }

  /** Whether presence counts a subscription's audience: a public stream's or a channel's (`room:lobby`), not a private one's. */
  #isCounted (name: string): boolean {
    return name.includes(':') || this.ctx.app.notify.streams.get(name)?.kind === 'public'
  }

  async #refresh (token: string, id: CorrelationId): Promise<void> {
    if (this.#principal.user === null) {
      this.send(errorFrame('UNAUTHORIZED', 'anonymous connections cannot refresh', { id }))
      return
    }
    let next: Principal
    try {
      next = refuseRevoked(this.ctx.app, await principalFromJwt(this.ctx.app, token))
    } catch {
      this.send(errorFrame('UNAUTHORIZED', 'invalid or expired token', { id }))
      return
    }
    // The key may have been fetched meanwhile: the socket may be gone.
    if (this.#closed) return
    if (next.user !== this.#principal.user) {
      this.send(errorFrame('UNAUTHORIZED', 'token is for another user', { id }))
      this.close(CLOSE.FORBIDDEN, 'token is for another user')
      return
    }
    this.#principal = next
    this.#armExpiry()
    this.send(frame('refreshed', { expiresAt: next.expiresAt, id }))
  }
}
