// The publish rules of SPEC section 5, in one place: the edge's notify plugin and the publisher
// validate and encode the same way, and differ only in how a checked message travels.
import type { FastifyBaseLogger } from 'fastify'
import {
  BadPresenceQueryError, BadPublishError, DataRequiredError, InvalidDataError, InvalidKeyError, InvalidOptionError, InvalidUserError,
  KeyNotAllowedError, KeyRequiredError, PresenceDisabledError, UnknownStreamError, UserNotAllowedError, UserRequiredError
} from './errors.js'
import type { DeclaredStream } from './declarations.js'
import type { OnceKey } from './history/store.js'
import { messageTemplate, retarget, type MessageTemplate } from './message.js'
import { allOrUnknown, mapLate } from './outcome.js'
import type { NotifyMetricsRecorder } from './recorder.js'
import type { PresenceStore, StreamPresence, UserPresence } from './presence/store.js'
import { keyProblem, userIdProblem } from './topics.js'
import type { PublishInput, PublishResult, Publisher } from './typed.js'
import type { NotifyControl } from './control-commands.js'

// The publish types come from the typed layer (typed.ts), so that a declaration types them.
export type { PublishInput, PublishResult } from './typed.js'

/** Who to ask about: users (private and public streams alike), a public stream's audience, or a channel key's. */
export type PresenceQuery = { user: string } | { users: string[] } | { stream: string } | { stream: string, key: string }

/** Where `presence()` reads, once the query is checked: a presence store, or an edge asked remotely. */
export type PresenceSource = Pick<PresenceStore, 'users' | 'stream'>

/** Each user asked about, whether connected or not. */
export interface UsersPresence {
  users: Record<string, UserPresence>
}

/** A public stream's audience, in counts; a channel key's too, with its `members` when the channel declares them. */
export interface PublicStreamPresence extends StreamPresence {
  stream: string
  /** The channel key asked about. */
  key?: string
}

/** What `onOffline` is told about the message the offline users missed live. */
export interface OfflineMessage {
  stream: string
  data: unknown
  /** The id of each offline user's copy, in the order of `users`. */
  ids: string[]
  /**
   * Set when the offline delivery plugin handled the message (SPEC section 18): per user, the
   * channels it sends the copy through.
   */
  fallback?: Record<string, OfflineFallback>
}

/** Where an offline user's copy goes: Web Push, e-mail, both, or nowhere. */
export type OfflineFallback = 'push' | 'email' | 'both' | 'none'

/**
 * Takes over the offline users of a private publish (the offline delivery plugin). Called
 * synchronously from the publish, which it must not delay; it calls `onOffline` itself once it
 * knows the fallback of each user.
 */
export type OfflineHandoff = (users: string[], message: OfflineMessage, onOffline: (users: string[], message: OfflineMessage) => void) => void

/** Called with the users of a private publish who had no subscribed connection anywhere. */
export type OnOffline = (users: string[], message: OfflineMessage) => unknown

/** A publish that passed every check: what a transport sends. */
export interface CheckedPublish {
  readonly stream: DeclaredStream
  /** The recipients in the caller's order; `[null]` on a public stream or a channel. */
  readonly users: Array<string | null>
  /** A channel's keys in the caller's order; null on other streams. */
  readonly keys: string[] | null
  /** The caller's input, as checked (a remote transport forwards it). */
  readonly input: PublishInput
  /** The `message` frame without its id and ts, serialized once for every recipient. */
  readonly template: MessageTemplate
}

/**
 * One message sent: its id, and how many instances subscribe to its topic (null when the bus
 * cannot tell); `replayed` when an earlier attempt under the same idempotency key had sent it.
 */
export interface Sent { id: string, receivers: number | null, replayed?: true }

/**
 * Sends a checked publish; resolves with one `Sent` per recipient, in order. `once` is the
 * publish's idempotency key, for a history store that records the answer with the append.
 */
export type Deliver = (publish: CheckedPublish, once?: OnceKey) => Promise<Sent[]>

/** Sends one message to one topic. */
export type SendToTopic = (stream: DeclaredStream, topic: string, template: MessageTemplate, once?: OnceKey) => Promise<Sent>

/** `publish` as `publisherOf` builds it: the idempotency layer passes the key down (not public API). */
export type PublishUnderKey = (input: PublishInput, once?: OnceKey, from?: string) => Promise<PublishResult>

/**
 * `app.notify`: the declared streams, publishing and presence, whether the edge is here or
 * elsewhere. `publish` resolves with `{id}` or, for `users`, `{ids}` in the same order (see
 * `PublishResult`), typed by the streams registered in `NotifyEdgeStreams`.
 */
/**
 * `disconnect`, `revoke`, `subscribe` and `unsubscribe` (SPEC section 15) act on users on every
 * instance: on the edge with the control plugin, from a publisher over Redis or HTTP.
 */
export interface Notify extends Publisher, NotifyControl {
  readonly streams: ReadonlyMap<string, DeclaredStream>
  /**
   * Who is connected across all instances, now: `FST_NOTIFY_BAD_PRESENCE_QUERY` (400) for a bad
   * query, `FST_NOTIFY_PRESENCE_UNAVAILABLE` (503) when Redis does not answer in time,
   * `FST_NOTIFY_PRESENCE_DISABLED` (501) without the presence plugin (and from a publisher over
   * gRPC or AMQP).
   */
  presence (query: { stream: string } | { stream: string, key: string }): Promise<PublicStreamPresence>
  presence (query: { user: string } | { users: string[] }): Promise<UsersPresence>
  presence (query: PresenceQuery): Promise<UsersPresence | PublicStreamPresence>
}

// Declared here rather than beside one decorator: the edge's notify plugin and the publisher
// both decorate `app.notify`, and only one of them is ever registered in an app.
declare module 'fastify' {
  interface FastifyInstance {
    /** Declared streams, `publish()` and `presence()` (see `Notify`). */
    notify: Notify
  }
}

const PUBLISH_KEYS = new Set(['stream', 'user', 'users', 'key', 'keys', 'data'])

/** How a list of recipients (users or keys) is named and checked. */
interface Recipients {
  one: 'user' | 'key'
  many: 'users' | 'keys'
  what: string
  problem: (value: unknown) => string | null
  Invalid: new (problem: string) => Error
}
const USERS: Recipients = { one: 'user', many: 'users', what: 'user ids', problem: userIdProblem, Invalid: InvalidUserError }
const KEYS: Recipients = { one: 'key', many: 'keys', what: 'channel keys', problem: keyProblem, Invalid: InvalidKeyError }

/** `user` or `users` (`key` or `keys`), checked, as 1 to `max` ids; exactly one of the two is given. */
function recipientList (input: Record<string, unknown>, max: number, { one, many, what, problem, Invalid }: Recipients): string[] {
  const list = input[one] !== undefined ? [input[one]] : input[many]
  if (!Array.isArray(list) || list.length === 0 || list.length > max) {
    throw new BadPublishError(`${many} must be an array of 1 to ${max} ${what}`)
  }
  for (const value of list) {
    const found = problem(value)
    if (found !== null) throw new Invalid(found)
  }
  return list as string[]
}

/** A channel publish's keys (`key` or `keys`, checked), or null for another stream, which may have none. */
function channelKeys (stream: DeclaredStream, input: Record<string, unknown>, maxKeys: number): string[] | null {
  const hasKey = input.key !== undefined
  if (stream.kind !== 'channel') {
    if (hasKey || input.keys !== undefined) throw new KeyNotAllowedError(stream.name)
    return null
  }
  if (input.user !== undefined || input.users !== undefined) throw new BadPublishError(`stream ${stream.name} is a channel: give "key" or "keys", not users`)
  if (hasKey === (input.keys !== undefined)) throw new KeyRequiredError(stream.name)
  return recipientList(input, maxKeys, KEYS)
}

function recipients (stream: DeclaredStream, input: Record<string, unknown>, maxUsers: number): Array<string | null> {
  const hasUser = input.user !== undefined
  const hasUsers = input.users !== undefined
  if (stream.kind !== 'private') {
    if (hasUser || hasUsers) throw new UserNotAllowedError(stream.name)
    return [null]
  }
  if (hasUser === hasUsers) throw new UserRequiredError(stream.name)
  return recipientList(input, maxUsers, USERS)
}

/**
 * Checks `input` against the declared streams; throws the coded 400 errors of SPEC section 5.
 * `from` (a client publish's sender, SPEC section 13) goes into the frame, never from `input`.
 */
export function checkPublish (streams: ReadonlyMap<string, DeclaredStream>, maxUsers: number, input: unknown, from?: string): CheckedPublish {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new BadPublishError('body must be a JSON object')
  }
  const body = input as Record<string, unknown>
  for (const key of Object.keys(body)) {
    if (!PUBLISH_KEYS.has(key)) throw new BadPublishError(`unexpected property ${key}`)
  }
  const stream = typeof body.stream === 'string' ? streams.get(body.stream) : undefined
  if (stream === undefined) throw new UnknownStreamError(String(body.stream).slice(0, 64))
  const keys = channelKeys(stream, body, maxUsers)
  const users = recipients(stream, body, maxUsers)
  if (body.data === undefined) throw new DataRequiredError()
  const problem = stream.dataProblem(body.data)
  if (problem !== null) throw new InvalidDataError(stream.name, problem)
  let template: MessageTemplate
  try {
    template = messageTemplate(stream.name, body.data, from)
  } catch (err) {
    throw new InvalidDataError(stream.name, (err as Error).message)
  }
  return { stream, users, keys, input: input as PublishInput, template }
}

/**
 * `publish()` over `deliver`: checks, sends, and answers `{id}` or `{ids}`, with who was offline
 * on a private stream when the bus could tell (then `offline` hears about them).
 */
export function publisherOf (
  streams: ReadonlyMap<string, DeclaredStream>, maxUsers: number, deliver: Deliver, offline: (users: string[], message: OfflineMessage) => void
): Notify['publish'] {
  // One implementation behind the typed overloads: the checks hold whatever the types said.
  async function publish (input: PublishInput, once?: OnceKey, from?: string): Promise<PublishResult> {
    const checked = checkPublish(streams, maxUsers, input, from)
    let sent: Sent[]
    try {
      sent = await deliver(checked, once)
    } catch (err) {
      // Sent but unanswered: when Redis answers after all, the idempotency layer records this.
      return mapLate(err, (late: Sent[]) => answer(checked, late))
    }
    if (once !== undefined && sent.every((s) => s.replayed === true)) once.replayed = true
    return answer(checked, sent)
  }
  function answer (checked: CheckedPublish, sent: Sent[]): PublishResult {
    const { stream, users, input } = checked
    const data = (input as { data: unknown }).data
    if (stream.kind === 'public') return { id: sent[0].id }
    if (stream.kind === 'channel') return (input as { key?: unknown }).key !== undefined ? { id: sent[0].id } : { ids: sent.map((s) => s.id) }
    // PUBLISH's receivers are the instances holding a socket subscribed to this user's topic.
    const known = sent.every((s) => s.receivers !== null)
    const missed = known ? (users as string[]).filter((_, i) => sent[i].receivers === 0) : []
    // A replayed message's offline users were told about by the attempt that sent it.
    const tell = missed.length > 0 ? (users as string[]).filter((_, i) => sent[i].receivers === 0 && sent[i].replayed !== true) : missed
    if (tell.length > 0) offline(tell, { stream: stream.name, data, ids: sent.flatMap((s) => s.receivers === 0 && s.replayed !== true ? [s.id] : []) })
    if ((input as { users?: unknown }).users === undefined) return known ? { id: sent[0].id, online: missed.length === 0 } : { id: sent[0].id }
    const result = { ids: sent.map((s) => s.id) }
    return known ? { ...result, offline: missed } : result
  }
  return publish as Notify['publish']
}

/**
 * The edge's publish with the sender of a client publish: the frames carry `"from"`. Only the
 * edge's `app.notify.publish` (built by `publisherOf`) takes it; the upstream plugin, which calls
 * this, depends on the edge's notify plugin.
 */
export type PublishAs = (input: PublishInput, from?: string) => Promise<PublishResult>

export function publishAs (notify: Notify): PublishAs {
  const publish = notify.publish as PublishUnderKey
  return (input, from) => publish(input, undefined, from)
}

/** Calls `onOffline` without awaiting it (the publish has succeeded already); a throw or a rejection is logged. */
export function offlineHook (onOffline: OnOffline | undefined, log: FastifyBaseLogger): (users: string[], message: OfflineMessage) => void {
  if (onOffline !== undefined && typeof onOffline !== 'function') throw new InvalidOptionError('onOffline must be a function')
  return (users, message) => {
    if (onOffline === undefined) return
    const failed = (err: unknown): void => { log.error({ err, stream: message.stream }, 'notify onOffline hook failed') }
    try {
      Promise.resolve(onOffline(users, message)).catch(failed)
    } catch (err) {
      failed(err)
    }
  }
}

/** A `Deliver` that sends to each recipient's topic at once, counting each message in `metrics`. */
export function perTopic (send: SendToTopic, metrics: NotifyMetricsRecorder): Deliver {
  function sendTo (stream: DeclaredStream, target: string | null, template: MessageTemplate, once?: OnceKey): Promise<Sent> {
    return send(stream, stream.topic(target), template, once).then((sent) => {
      metrics.published(stream.name)
      return sent
    }, (err: unknown) => {
      metrics.publishFailed(stream.name)
      throw err
    })
  }
  return ({ stream, users, keys, template }, once) => {
    // Each key's frame names its channel in full (`room:lobby`); the data is serialized once for all.
    if (keys !== null) return allOrUnknown(keys.map((key) => sendTo(stream, key, retarget(template, `${stream.name}:${key}`), once)))
    // One recipient is the common case, and the hot path of a busy publisher: no Promise.all.
    if (users.length === 1) return sendTo(stream, users[0], template, once).then(inArray, (err) => mapLate(err, inArray))
    return allOrUnknown(users.map((user) => sendTo(stream, user, template, once)))
  }
}

function inArray<T> (value: T): T[] {
  return [value]
}

const PRESENCE_KEYS = new Set(['stream', 'user', 'users'])

/** A channel key's audience: counts, and its members when the channel declares member presence. */
async function channelPresence (source: PresenceSource, stream: DeclaredStream, key: unknown): Promise<PublicStreamPresence> {
  const problem = keyProblem(key)
  if (problem !== null) throw new BadPresenceQueryError(`key ${problem}`)
  const found = await source.stream(`${stream.name}:${key as string}`, stream.members)
  return { stream: stream.name, key: key as string, ...found }
}

/** A source with nothing to tell: every read fails with `FST_NOTIFY_PRESENCE_DISABLED` (501), saying why. */
export function noPresence (why: string): PresenceSource {
  const disabled = async (): Promise<never> => { throw new PresenceDisabledError(why) }
  return { users: disabled, stream: disabled }
}

/**
 * `presence()` over `source`: checks the query as SPEC section 8 says (the coded 400s), then asks.
 * The edge and the publisher share it, so a publisher refuses exactly what an edge would.
 */
export function presenceOf (streams: ReadonlyMap<string, DeclaredStream>, maxUsers: number, source: () => PresenceSource): Notify['presence'] {
  async function presence (query: PresenceQuery): Promise<UsersPresence | PublicStreamPresence> {
    if (query === null || typeof query !== 'object' || Array.isArray(query)) throw new BadPresenceQueryError('the query must be an object')
    const keys = Object.keys(query).filter((name) => name !== 'key')
    if (keys.length !== 1 || !PRESENCE_KEYS.has(keys[0])) throw new BadPresenceQueryError('give exactly one of user, users or stream')
    const key = (query as { key?: unknown }).key
    if (key !== undefined && !('stream' in query)) throw new BadPresenceQueryError('a key goes with a channel stream')
    if ('stream' in query) {
      const stream = typeof query.stream === 'string' ? streams.get(query.stream) : undefined
      if (stream === undefined) throw new UnknownStreamError(String(query.stream).slice(0, 64))
      if (stream.kind === 'channel') {
        if (key === undefined) throw new BadPresenceQueryError(`stream ${stream.name} is a channel: give a key`)
        return channelPresence(source(), stream, key)
      }
      if (key !== undefined) throw new BadPresenceQueryError(`stream ${stream.name} is not a channel: it takes no key`)
      // A private stream's audience is its users: ask about them.
      if (stream.kind === 'private') throw new BadPresenceQueryError(`stream ${stream.name} is private: ask about users`)
      return { stream: stream.name, ...await source().stream(stream.name) }
    }
    const users = 'user' in query ? [query.user] : query.users
    if (!Array.isArray(users) || users.length === 0 || users.length > maxUsers) {
      throw new BadPresenceQueryError(`users must be an array of 1 to ${maxUsers} user ids`)
    }
    for (const user of users) {
      const problem = userIdProblem(user)
      if (problem !== null) throw new BadPresenceQueryError(`user ${problem}`)
    }
    const unique = [...new Set(users)]
    const found = await source().users(unique)
    return { users: Object.fromEntries(unique.map((user, i) => [user, found[i]])) }
  }
  return presence as Notify['presence']
}
