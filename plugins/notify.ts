import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import {
  BadPublishError, DataRequiredError, InvalidDataError, InvalidOptionError, InvalidUserError,
  UnknownStreamError, UserNotAllowedError, UserRequiredError
} from './errors.js'
import { declareStreams, type DeclaredStream, type StreamDefinition } from './declarations.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './recorder.js'
import { messageFrame, messageTemplate, type MessageTemplate } from './message.js'
import { TOPIC_PREFIX, userIdProblem } from './topics.js'
import type { PublishInput, PublishResult, Publisher } from './typed.js'
import { positiveInteger } from './util.js'

export interface NotifyOptions {
  /** The declared streams (see `defineStreams`). */
  streams: readonly StreamDefinition[]
  /** Prefix of every bus topic, so deployments can share one Redis. @default 'notify' */
  topicPrefix?: string
  /** Most users one publish may address. @default 1000 */
  maxUsersPerPublish?: number
}

/**
 * `app.notify`: the declared streams and in-process publishing, which resolves with `{ id }` or,
 * for `users`, `{ ids }` in the same order; typed by the streams registered in `NotifyEdgeStreams`.
 */
export interface Notify extends Publisher {
  readonly streams: ReadonlyMap<string, DeclaredStream>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Declared streams and `publish()` (see `Notify`). */
    notify: Notify
  }
}

const PUBLISH_KEYS = new Set(['stream', 'user', 'users', 'data'])

async function fastifyNotify (app: FastifyInstance, opts: NotifyOptions): Promise<void> {
  const prefix = opts.topicPrefix ?? 'notify'
  if (typeof prefix !== 'string' || !TOPIC_PREFIX.test(prefix)) {
    throw new InvalidOptionError(`topicPrefix must match ${TOPIC_PREFIX}`)
  }
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
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

  async function send (stream: DeclaredStream, topic: string, template: MessageTemplate): Promise<string> {
    if (stream.history === undefined) {
      const { id, ts } = ids.next()
      await bus.publish({ topic, id, frame: messageFrame(template, id, ts) })
      return id
    }
    // Durable first: a message is on the bus only once history holds it, under the same id.
    const { store } = app.notifyHistory
    const message = await store.append(topic, template, stream.history)
    if (!store.appendPublishes) await bus.publish(message)
    return message.id
  }

  async function counted (stream: DeclaredStream, sent: Promise<string>): Promise<string> {
    try {
      const id = await sent
      metrics.published(stream.name)
      return id
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
    const published = await Promise.all(users.map((user) => counted(stream, send(stream, stream.topic(user), template))))
    return body.users === undefined ? { id: published[0] } : { ids: published }
  }

  // One implementation behind the typed overloads: the checks above hold whatever the types said.
  const decorator: Notify = { streams, publish: publish as Notify['publish'] }
  app.decorate('notify', decorator)
}

export const notify = fp(fastifyNotify, {
  fastify: '5.x',
  name: 'notify-edge-notify',
  dependencies: ['notify-edge-bus']
})
export default notify
