// JSON schemas of the HTTP and WebSocket surface, built from the stream declarations: the same
// declarations that validate at run time describe the API to OpenAPI and AsyncAPI tools. They
// document; validation stays in `app.notify.publish`, whose coded errors the contract names.
import type { DeclaredStream } from './declarations.js'
import { CHANNEL_KEY, MAX_USER_LENGTH } from './topics.js'

export type JsonSchema = Record<string, unknown>

const USER: JsonSchema = { type: 'string', minLength: 1, maxLength: MAX_USER_LENGTH, description: 'a user id (the JWT `sub`)' }
const KEY: JsonSchema = { type: 'string', pattern: CHANNEL_KEY.source, description: 'a channel key (`lobby` of `room:lobby`)' }

/** A declared stream's `data` schema as plain JSON (a TypeBox schema's hidden keys dropped); `{}` without one. */
export function dataSchema (stream: DeclaredStream): JsonSchema {
  return stream.schema === undefined ? {} : JSON.parse(JSON.stringify(stream.schema)) as JsonSchema
}

const TO = { user: 'one user', users: 'several users', key: 'one key', keys: 'several keys' }

function publishVariant (stream: DeclaredStream, recipients: 'user' | 'users' | 'key' | 'keys' | null): JsonSchema {
  const properties: JsonSchema = { stream: { type: 'string', const: stream.name } }
  if (recipients === 'user') properties.user = USER
  if (recipients === 'users') properties.users = { type: 'array', minItems: 1, items: USER }
  if (recipients === 'key') properties.key = KEY
  if (recipients === 'keys') properties.keys = { type: 'array', minItems: 1, items: KEY }
  properties.data = dataSchema(stream)
  const required = recipients === null ? ['stream', 'data'] : ['stream', recipients, 'data']
  const to = recipients === null ? 'everyone subscribed' : TO[recipients]
  return { title: `${stream.name} to ${to}`, type: 'object', required, additionalProperties: false, properties }
}

/** The publish body: one variant per stream and addressing (a private stream's `user` or `users`). */
export function publishBodySchema (streams: Iterable<DeclaredStream>): JsonSchema {
  const oneOf = [...streams].flatMap((stream) => stream.kind === 'public'
    ? [publishVariant(stream, null)]
    : stream.kind === 'channel'
      ? [publishVariant(stream, 'key'), publishVariant(stream, 'keys')]
      : [publishVariant(stream, 'user'), publishVariant(stream, 'users')])
  return { oneOf }
}

const MESSAGE_ID: JsonSchema = { type: 'string', description: 'the message id, `<ms>-<seq>`, increasing per stream topic' }

/** What a publish answers: by its addressing; `online` / `offline` when presence is known. */
export const publishResultSchema: JsonSchema = {
  oneOf: [
    {
      title: 'to one user, or a public stream',
      type: 'object',
      required: ['id'],
      properties: { id: MESSAGE_ID, online: { type: 'boolean', description: 'whether the user had a connection subscribed to the stream' } }
    },
    {
      title: 'to several users',
      type: 'object',
      required: ['ids'],
      properties: {
        ids: { type: 'array', items: MESSAGE_ID, description: 'in the order of `users`' },
        offline: { type: 'array', items: { type: 'string' }, description: 'the users without a connection subscribed to the stream' }
      }
    }
  ]
}

/** Fastify's error JSON, with this package's `FST_NOTIFY_*` codes. */
export const errorSchema: JsonSchema = {
  type: 'object',
  required: ['statusCode', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string', description: 'e.g. FST_NOTIFY_UNKNOWN_STREAM' },
    error: { type: 'string' },
    message: { type: 'string' }
  }
}

const COUNT: JsonSchema = { type: 'integer', minimum: 0 }

/** `GET /presence`: users (`?user=a&user=b`), or a public stream's audience (`?stream=`), in counts. */
export const presenceSchema: JsonSchema = {
  summary: 'Who is connected, across all instances',
  tags: ['notify-edge'],
  security: [{ notifyApiKey: [] }],
  querystring: {
    type: 'object',
    properties: {
      user: { type: 'array', items: USER, description: 'repeat for several users' },
      stream: { type: 'string', description: 'a public stream or a channel stream (not with user)' },
      key: { type: 'string', description: 'the channel key (with a channel stream)' }
    }
  },
  response: {
    200: {
      oneOf: [
        {
          title: 'users',
          type: 'object',
          required: ['users'],
          properties: {
            users: {
              type: 'object',
              additionalProperties: {
                type: 'object',
                required: ['connections', 'streams'],
                properties: { connections: COUNT, streams: { type: 'array', items: { type: 'string' } } }
              }
            }
          }
        },
        {
          title: 'a public stream, or a channel key',
          type: 'object',
          required: ['stream', 'connections', 'users'],
          properties: {
            stream: { type: 'string' },
            key: { type: 'string' },
            connections: COUNT,
            users: COUNT,
            members: { type: 'array', items: { type: 'string' }, description: 'a channel that declares member presence: its users' }
          }
        }
      ]
    },
    400: errorSchema,
    401: errorSchema,
    503: errorSchema
  }
}
