import fp from 'fastify-plugin'
import { Ajv, type ValidateFunction } from 'ajv'
import type { FastifyInstance } from 'fastify'
import {
  BadPublishError, DataRequiredError, InvalidDataError, InvalidOptionError, InvalidUserError,
  UnknownStreamError, UserNotAllowedError, UserRequiredError
} from './errors.js'
import type { HistoryBounds } from './history/store.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './metrics.js'
import type { Principal } from './principal.js'
import { messageFrame, messageTemplate, type MessageTemplate } from './streams/protocol.js'
import { STREAM_NAME, TOPIC_PREFIX, privateTopic, publicTopic, userIdProblem } from './topics.js'
import { positiveInteger } from './util.js'

export type StreamKind = 'public' | 'private'

/** A stream the server declares. */
export interface StreamDefinition {
  /** `[A-Za-z0-9_-]{1,64}` */
  name: string
  /** public: one topic for all; private: one topic per user, seen only by that user. */
  kind: StreamKind
  /** Decides whether a principal may subscribe; false → `FORBIDDEN`. @default everyone (private: own topic only) */
  authorize?: (principal: Principal, stream: string) => boolean | Promise<boolean>
  /** JSON schema that a published message's `data` must satisfy. */
  schema?: Record<string, unknown>
  /**
   * Keep this stream's messages (per topic: per user for a private stream) so that clients can
   * resume with `since`. Needs the history plugin. @default no history
   */
  history?: HistoryBounds
}

export interface NotifyOptions {
  /** The declared streams. */
  streams: StreamDefinition[]
  /** Prefix of every bus topic, so deployments can share one Redis. @default 'notify' */
  topicPrefix?: string
  /** Most users one publish may address. @default 1000 */
  maxUsersPerPublish?: number
}

export type PublishInput =
  | { stream: string, user: string, data: unknown }
  | { stream: string, users: string[], data: unknown }
  | { stream: string, data: unknown }

export type PublishResult = { id: string } | { ids: string[] }

/** A declared stream as the plugins use it. */
export interface DeclaredStream extends Readonly<StreamDefinition> {
  /** The bus topic of this stream for a user (private) or for everyone (public, user ignored). */
  topic (user: string | null): string
}

/** `app.notify`: the declared streams and in-process publishing. */
export interface Notify {
  readonly streams: ReadonlyMap<string, DeclaredStream>
  /** Publishes on SPEC rules; resolves with `{id}` or, for `users`, `{ids}` in the same order. */
  publish (input: PublishInput): Promise<PublishResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Declared streams and `publish()` (see `Notify`). */
    notify: Notify
  }
}

const PUBLISH_KEYS = new Set(['stream', 'user', 'users', 'data'])

function historyBounds (stream: string, bounds: unknown): HistoryBounds | undefined {
  if (bounds === undefined) return undefined
  if (bounds === null || typeof bounds !== 'object') throw new InvalidOptionError(`stream ${stream}: history must be { size, ttl }`)
  const { size, ttl } = bounds as Record<string, unknown>
  if (size === undefined || ttl === undefined) throw new InvalidOptionError(`stream ${stream}: history needs size and ttl`)
  return Object.freeze({
    size: positiveInteger(`stream ${stream}: history.size`, size, 0),
    ttl: positiveInteger(`stream ${stream}: history.ttl`, ttl, 0)
  })
}

function declareStreams (definitions: unknown, prefix: string, ajv: Ajv, validators: Map<string, ValidateFunction>): Map<string, DeclaredStream> {
  if (!Array.isArray(definitions) || definitions.length === 0) {
    throw new InvalidOptionError('streams must be a non-empty array')
  }
  const streams = new Map<string, DeclaredStream>()
  for (const def of definitions as StreamDefinition[]) {
    if (typeof def?.name !== 'string' || !STREAM_NAME.test(def.name)) {
      throw new InvalidOptionError(`stream name must match ${STREAM_NAME}, got ${String(def?.name)}`)
    }
    if (streams.has(def.name)) throw new InvalidOptionError(`stream ${def.name} is declared twice`)
    if (def.kind !== 'public' && def.kind !== 'private') {
      throw new InvalidOptionError(`stream ${def.name}: kind must be 'public' or 'private'`)
    }
    if (def.authorize !== undefined && typeof def.authorize !== 'function') {
      throw new InvalidOptionError(`stream ${def.name}: authorize must be a function`)
    }
    try {
      if (def.schema !== undefined) validators.set(def.name, ajv.compile(def.schema))
    } catch (err) {
      throw new InvalidOptionError(`stream ${def.name}: bad schema: ${(err as Error).message}`)
    }
    const history = historyBounds(def.name, def.history)
    const name = def.name
    const topic = def.kind === 'public'
      ? () => publicTopic(prefix, name)
      : (user: string | null) => privateTopic(prefix, name, user as string)
    streams.set(name, Object.freeze({ ...def, history, topic }))
  }
  return streams
}

async function fastifyNotify (app: FastifyInstance, opts: NotifyOptions): Promise<void> {
  const prefix = opts.topicPrefix ?? 'notify'
  if (typeof prefix !== 'string' || !TOPIC_PREFIX.test(prefix)) {
    throw new InvalidOptionError(`topicPrefix must match ${TOPIC_PREFIX}`)
  }
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const ajv = new Ajv()
  const validators = new Map<string, ValidateFunction>()
  const streams = declareStreams(opts.streams, prefix, ajv, validators)
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
    const validate = validators.get(stream.name)
    if (validate !== undefined && !validate(body.data)) {
      throw new InvalidDataError(stream.name, ajv.errorsText(validate.errors))
    }
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

  app.decorate('notify', { streams, publish })
}

export const notify = fp(fastifyNotify, {
  fastify: '5.x',
  name: 'notify-edge-notify',
  dependencies: ['notify-edge-bus']
})
export default notify
