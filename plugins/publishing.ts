// The publish rules of SPEC section 5, in one place: the edge's notify plugin and the publisher
// validate and encode the same way, and differ only in how a checked message travels.
import {
  BadPublishError, DataRequiredError, InvalidDataError, InvalidUserError,
  UnknownStreamError, UserNotAllowedError, UserRequiredError
} from './errors.js'
import type { DeclaredStream } from './declarations.js'
import { messageTemplate, type MessageTemplate } from './message.js'
import type { NotifyMetricsRecorder } from './recorder.js'
import { userIdProblem } from './topics.js'

export type PublishInput =
  | { stream: string, user: string, data: unknown }
  | { stream: string, users: string[], data: unknown }
  | { stream: string, data: unknown }

export type PublishResult = { id: string } | { ids: string[] }

/** A publish that passed every check: what a transport sends. */
export interface CheckedPublish {
  readonly stream: DeclaredStream
  /** The recipients in the caller's order; `[null]` on a public stream. */
  readonly users: Array<string | null>
  /** The caller's input, as checked (a remote transport forwards it). */
  readonly input: PublishInput
  /** The `message` frame without its id and ts, serialized once for every recipient. */
  readonly template: MessageTemplate
}

/** Sends a checked publish; resolves with one id per recipient, in order. */
export type Deliver = (publish: CheckedPublish) => Promise<string[]>

/** Sends one message to one topic; resolves with its id. */
export type SendToTopic = (stream: DeclaredStream, topic: string, template: MessageTemplate) => Promise<string>

/** `app.notify`: the declared streams and publishing, whether the edge is here or elsewhere. */
export interface Notify {
  readonly streams: ReadonlyMap<string, DeclaredStream>
  /** Publishes on SPEC rules; resolves with `{id}` or, for `users`, `{ids}` in the same order. */
  publish (input: PublishInput): Promise<PublishResult>
}

// Declared here rather than beside one decorator: the edge's notify plugin and the publisher
// both decorate `app.notify`, and only one of them is ever registered in an app.
declare module 'fastify' {
  interface FastifyInstance {
    /** Declared streams and `publish()` (see `Notify`). */
    notify: Notify
  }
}

const PUBLISH_KEYS = new Set(['stream', 'user', 'users', 'data'])

function recipients (stream: DeclaredStream, input: Record<string, unknown>, maxUsers: number): Array<string | null> {
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

/** Checks `input` against the declared streams; throws the coded 400 errors of SPEC section 5. */
export function checkPublish (streams: ReadonlyMap<string, DeclaredStream>, maxUsers: number, input: unknown): CheckedPublish {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new BadPublishError('body must be a JSON object')
  }
  const body = input as Record<string, unknown>
  for (const key of Object.keys(body)) {
    if (!PUBLISH_KEYS.has(key)) throw new BadPublishError(`unexpected property ${key}`)
  }
  const stream = typeof body.stream === 'string' ? streams.get(body.stream) : undefined
  if (stream === undefined) throw new UnknownStreamError(String(body.stream).slice(0, 64))
  const users = recipients(stream, body, maxUsers)
  if (body.data === undefined) throw new DataRequiredError()
  const problem = stream.dataProblem(body.data)
  if (problem !== null) throw new InvalidDataError(stream.name, problem)
  let template: MessageTemplate
  try {
    template = messageTemplate(stream.name, body.data)
  } catch (err) {
    throw new InvalidDataError(stream.name, (err as Error).message)
  }
  return { stream, users, input: input as PublishInput, template }
}

/** `publish()` over `deliver`: checks, sends, and answers `{id}` or `{ids}`. */
export function publisherOf (streams: ReadonlyMap<string, DeclaredStream>, maxUsers: number, deliver: Deliver): Notify['publish'] {
  return async function publish (input) {
    const checked = checkPublish(streams, maxUsers, input)
    const ids = await deliver(checked)
    return (input as { users?: unknown }).users === undefined ? { id: ids[0] } : { ids }
  }
}

/** A `Deliver` that sends to each recipient's topic at once, counting each message in `metrics`. */
export function perTopic (send: SendToTopic, metrics: NotifyMetricsRecorder): Deliver {
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
  return ({ stream, users, template }) =>
    Promise.all(users.map((user) => counted(stream, send(stream, stream.topic(user), template))))
}
