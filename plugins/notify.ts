import fp from 'fastify-plugin'
import { Ajv, type ValidateFunction } from 'ajv'
import type { FastifyInstance } from 'fastify'
import {
  BadPublishError, DataRequiredError, InvalidDataError, InvalidOptionError, InvalidUserError,
  UnknownStreamError, UserNotAllowedError, UserRequiredError
} from './errors.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './metrics.js'
import type { Principal } from './principal.js'
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
    const name = def.name
    const topic = def.kind === 'public'
      ? () => publicTopic(prefix, name)
      : (user: string | null) => privateTopic(prefix, name, user as string)
    streams.set(name, Object.freeze({ ...def, topic }))
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
    const head = `{"event":"message","stream":"${stream.name}","id":"`
    const tail = `,"data":${JSON.stringify(body.data)}}`
    const published = await Promise.all(users.map(async (user) => {
      const { id, ts } = ids.next()
      try {
        await bus.publish({ topic: stream.topic(user), id, frame: `${head}${id}","ts":${ts}${tail}` })
      } catch (err) {
        metrics.publishFailed(stream.name)
        throw err
      }
      metrics.published(stream.name)
      return id
    }))
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
