import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { BadPresenceQueryError, InvalidOptionError, PresenceDisabledError, UnknownStreamError } from './errors.js'
import { declareStreams, type DeclaredStream, type StreamDefinition } from './declarations.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './recorder.js'
import { messageFrame, type MessageTemplate } from './message.js'
import {
  offlineHook, perTopic, publisherOf,
  type Notify, type OnOffline, type PresenceQuery, type PublicStreamPresence, type Sent, type UsersPresence
} from './publishing.js'
import { topicPrefixOption, userIdProblem } from './topics.js'
import { positiveInteger } from './util.js'

export type {
  Notify, OfflineMessage, OnOffline, PresenceQuery, PublicStreamPresence, PublishInput, PublishResult, UsersPresence
} from './publishing.js'

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
}

const PRESENCE_KEYS = new Set(['stream', 'user', 'users'])

async function fastifyNotify (app: FastifyInstance, opts: NotifyOptions): Promise<void> {
  const prefix = topicPrefixOption(opts.topicPrefix)
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const offline = offlineHook(opts.onOffline, app.log)
  const streams = declareStreams(opts.streams, prefix)
  const ids = new MessageIdGenerator()
  const bus = app.notifyBus
  const withHistory = [...streams.values()].filter((stream) => stream.history !== undefined)
  if (withHistory.length > 0 && !app.hasDecorator('notifyHistory')) {
    throw new InvalidOptionError(`stream ${withHistory[0].name} keeps history: register the history plugin first`)
  }

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

  const publish = publisherOf(streams, maxUsers, perTopic(send, metricsOf(app)), offline)
  app.decorate('notify', { streams, publish, presence } as Notify)
}

export const notify = fp(fastifyNotify, {
  fastify: '5.x',
  name: 'notify-edge-notify',
  dependencies: ['notify-edge-bus']
})
export default notify
