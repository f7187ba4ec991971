import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import {
  BadPresenceQueryError, BadPublishError, PresenceDisabledError, DataRequiredError, InvalidDataError, InvalidOptionError, InvalidUserError,
  UnknownStreamError, UserNotAllowedError, UserRequiredError
} from './errors.js'
import { declareStreams, type DeclaredStream, type StreamDefinition } from './declarations.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './recorder.js'
import { messageFrame, messageTemplate, type MessageTemplate } from './message.js'
import type { StreamPresence, UserPresence } from './presence/index.js'
import { TOPIC_PREFIX, userIdProblem } from './topics.js'
import type { PublishInput, PublishResult, Publisher } from './typed.js'
import { positiveInteger } from './util.js'

export interface NotifyOptions {
  /** The declared streams (see `defineStreams`). */
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
  onOffline?: (users: string[], message: OfflineMessage) => unknown
}

/** What `onOffline` is told about the message the offline users missed live. */
export interface OfflineMessage {
  stream: string
  data: unknown
  /** The id of each offline user's copy, in the order of `users`. */
  ids: string[]
}

/** Who to ask about: users (private and public streams alike), or a public stream's audience. */
export type PresenceQuery = { user: string } | { users: string[] } | { stream: string }

/** Each user asked about, whether connected or not. */
export interface UsersPresence {
  users: Record<string, UserPresence>
}

/** A public stream's audience, in counts. */
export interface PublicStreamPresence extends StreamPresence {
  stream: string
}

/**
 * `app.notify`: the declared streams, in-process publishing and presence. `publish` resolves with
 * `{ id }` or, for `users`, `{ ids }` in the same order (see `PublishResult`), and is typed by the
 * streams registered in `NotifyEdgeStreams`.
 */
export interface Notify extends Publisher {
  readonly streams: ReadonlyMap<string, DeclaredStream>
  /**
   * Who is connected across all instances, now: `FST_NOTIFY_BAD_PRESENCE_QUERY` (400) for a bad
   * query, `FST_NOTIFY_PRESENCE_UNAVAILABLE` (503) when Redis does not answer in time,
   * `FST_NOTIFY_PRESENCE_DISABLED` (501) without the presence plugin.
   */
  presence (query: { stream: string }): Promise<PublicStreamPresence>
  presence (query: { user: string } | { users: string[] }): Promise<UsersPresence>
  presence (query: PresenceQuery): Promise<UsersPresence | PublicStreamPresence>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Declared streams and `publish()` (see `Notify`). */
    notify: Notify
  }
}

const PUBLISH_KEYS = new Set(['stream', 'user', 'users', 'data'])
const PRESENCE_KEYS = new Set(['stream', 'user', 'users'])

async function fastifyNotify (app: FastifyInstance, opts: NotifyOptions): Promise<void> {
  const prefix = opts.topicPrefix ?? 'notify'
  if (typeof prefix !== 'string' || !TOPIC_PREFIX.test(prefix)) {
    throw new InvalidOptionError(`topicPrefix must match ${TOPIC_PREFIX}`)
  }
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const onOffline = opts.onOffline
  if (onOffline !== undefined && typeof onOffline !== 'function') throw new InvalidOptionError('onOffline must be a function')
  const streams = declareStreams(opts.streams, prefix)
  const ids = new MessageIdGenerator()
  const bus = app.notifyBus
  const metrics = metricsOf(app)
  const withHistory = [...streams.values()].filter((stream) => stream.history !== undefined)
  if (withHistory.length > 0 && !app.hasDecorator('notifyHistory')) {
    throw new InvalidOptionError(`stream ${withHistory[0].name} keeps history: register the history plugin first`)
  }

  function recipients (stream: DeclaredStream, input: Record<string, unknown>): Array<string | null> | string[] {
    const hasUser = input.user !== undefined
    const hasUsers = input.users !== undefined
    if (stream.kind === 'public') {
      if (hasUser || hasUsers) throw new UserNotAllowedError(stream.name)
      return [null]
    }
    if (hasUser === hasUsers) throw new UserRequiredError(stream.name)
    const users = hasUser ? [input.user] : input.users
    if (!Array.isArray(users) || users.length === 0 || users.length > maxUsers) {
      throw new BadPublishError(`users must be an array of 1 to ${maxUsers} user ids`)
    }
    for (const user of users) {
      const problem = userIdProblem(user)
      if (problem !== null) throw new InvalidUserError(problem)
    }
    return users as string[]
  }

  /** The id, and how many instances subscribe to the topic (null when the bus cannot tell). */
  interface Sent { id: string, receivers: number | null }

  async function send (stream: DeclaredStream, topic: string, template: MessageTemplate): Promise<Sent> {
    if (stream.history === undefined) {
      const { id, ts } = ids.next()
      return { id, receivers: await bus.publish({ topic, id, frame: messageFrame(template, id, ts) }) }
    }
    // Durable first: a message is on the bus only once history holds it, under the same id.
    const { store } = app.notifyHistory
    const { receivers, ...message } = await store.append(topic, template, stream.history)
    if (!store.appendPublishes) return { id: message.id, receivers: await bus.publish(message) }
    return { id: message.id, receivers: receivers ?? null }
  }

  async function counted (stream: DeclaredStream, sending: Promise<Sent>): Promise<Sent> {
    try {
      const sent = await sending
      metrics.published(stream.name)
      return sent
    } catch (err) {
      metrics.publishFailed(stream.name)
      throw err
    }
  }

  async function publish (input: PublishInput): Promise<PublishResult> {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new BadPublishError('body must be a JSON object')
    }
    const body = input as Record<string, unknown>
    for (const key of Object.keys(body)) {
      if (!PUBLISH_KEYS.has(key)) throw new BadPublishError(`unexpected property ${key}`)
    }
    const stream = typeof body.stream === 'string' ? streams.get(body.stream) : undefined
    if (stream === undefined) throw new UnknownStreamError(String(body.stream).slice(0, 64))
    const users = recipients(stream, body)
    if (body.data === undefined) throw new DataRequiredError()
    const problem = stream.dataProblem(body.data)
    if (problem !== null) throw new InvalidDataError(stream.name, problem)
    // The data is serialized once; each recipient's frame only adds its id.
    let template: MessageTemplate
    try {
      template = messageTemplate(stream.name, body.data)
    } catch (err) {
      throw new InvalidDataError(stream.name, (err as Error).message)
    }
    const sent = await Promise.all(users.map((user) => counted(stream, send(stream, stream.topic(user), template))))
    if (stream.kind === 'public') return { id: sent[0].id }
    // PUBLISH's receivers are the instances holding a socket subscribed to this user's topic.
    const known = sent.every((s) => s.receivers !== null)
    const offline = known ? (users as string[]).filter((_, i) => sent[i].receivers === 0) : []
    if (offline.length > 0) fallBack(stream.name, body.data, offline, sent.flatMap((s) => s.receivers === 0 ? [s.id] : []))
    if (body.users === undefined) return known ? { id: sent[0].id, online: offline.length === 0 } : { id: sent[0].id }
    const result = { ids: sent.map((s) => s.id) }
    return known ? { ...result, offline } : result
  }

  function fallBack (stream: string, data: unknown, users: string[], messageIds: string[]): void {
    if (onOffline === undefined) return
    const failed = (err: unknown): void => { app.log.error({ err, stream }, 'notify onOffline hook failed') }
    try {
      Promise.resolve(onOffline(users, { stream, data, ids: messageIds })).catch(failed)
    } catch (err) {
      failed(err)
    }
  }

  async function presence (query: PresenceQuery): Promise<UsersPresence | PublicStreamPresence> {
    if (query === null || typeof query !== 'object' || Array.isArray(query)) throw new BadPresenceQueryError('the query must be an object')
    const keys = Object.keys(query)
    if (keys.length !== 1 || !PRESENCE_KEYS.has(keys[0])) throw new BadPresenceQueryError('give exactly one of user, users or stream')
    if (!app.hasDecorator('notifyPresence')) throw new PresenceDisabledError()
    const store = app.notifyPresence
    if ('stream' in query) {
      const stream = typeof query.stream === 'string' ? streams.get(query.stream) : undefined
      if (stream === undefined) throw new UnknownStreamError(String(query.stream).slice(0, 64))
      // A private stream's audience is its users: ask about them.
      if (stream.kind === 'private') throw new BadPresenceQueryError(`stream ${stream.name} is private: ask about users`)
      return { stream: stream.name, ...await store.stream(stream.name) }
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
    const found = await store.users(unique)
    return { users: Object.fromEntries(unique.map((user, i) => [user, found[i]])) }
  }

  // One implementation behind the typed overloads: the checks above hold whatever the types said.
  app.decorate('notify', { streams, publish, presence } as Notify)
}

export const notify = fp(fastifyNotify, {
  fastify: '5.x',
  name: 'notify-edge-notify',
  dependencies: ['notify-edge-bus']
})
export default notify
