import fp from 'fastify-plugin'
import type { FastifyInstance, FastifySchema } from 'fastify'
import type { DeclaredStream } from './declarations.js'
import { InvalidOptionError } from './errors.js'
import { dataSchema, type JsonSchema } from './schemas.js'

/** A WebSocket route, as the document describes it. */
export interface AsyncApiRoute {
  path: string
  /** Anonymous: no credential, public streams only. @default false */
  anonymous?: boolean
}

export interface NotifyAsyncApiOptions {
  /** Route serving the document (or build it yourself with `asyncApiDocument`). @default '/asyncapi.json' */
  path?: string
  /** The document's `info`. @default { title: 'notify-edge', version: '1.0.0' } */
  info?: { title: string, version: string, description?: string }
  /** AsyncAPI 3 `servers`, e.g. `{ production: { host: 'edge.example.com', protocol: 'wss' } }`. @default none */
  servers?: Record<string, { host: string, protocol: 'ws' | 'wss', description?: string }>
  /** The WebSocket routes. The umbrella passes its own. @default [{ path: '/ws' }, { path: '/public', anonymous: true }] */
  routes?: AsyncApiRoute[]
}

const CORRELATION: JsonSchema = { oneOf: [{ type: 'string', maxLength: 128 }, { type: 'number' }], description: 'echoed by the answer' }
const STREAM_NAME: JsonSchema = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_@.=-]{1,128})?$', description: 'a stream, or a channel stream and its key (`room:lobby`)' }
const MESSAGE_ID: JsonSchema = { type: 'string', description: '`<ms>-<seq>`, increasing per stream topic' }

function frame (event: string, properties: JsonSchema = {}, required: string[] = []): JsonSchema {
  return { type: 'object', required: ['event', ...required], properties: { event: { type: 'string', const: event }, ...properties } }
}

// The protocol's frames (README "Protocol"), as AsyncAPI messages: the server receives the first
// four and sends the rest; stream messages are added per declared stream.
const CLIENT_FRAMES: Record<string, { summary: string, payload: JsonSchema }> = {
  subscribe: {
    summary: 'Subscribe to streams; an item with `since` resumes after that message.',
    payload: frame('subscribe', {
      streams: { type: 'array', items: { oneOf: [STREAM_NAME, { type: 'object', required: ['stream', 'since'], properties: { stream: STREAM_NAME, since: MESSAGE_ID } }] } },
      id: CORRELATION
    }, ['streams'])
  },
  unsubscribe: { summary: 'Unsubscribe from streams.', payload: frame('unsubscribe', { streams: { type: 'array', items: STREAM_NAME }, id: CORRELATION }, ['streams']) },
  ping: { summary: 'Application-level ping.', payload: frame('ping', { id: CORRELATION }) },
  refresh: { summary: 'Extend the connection with a new JWT for the same user.', payload: frame('refresh', { token: { type: 'string' }, id: CORRELATION }, ['token']) }
}

const SERVER_FRAMES: Record<string, { summary: string, payload: JsonSchema }> = {
  welcome: {
    summary: 'First frame after the socket opens.',
    payload: frame('welcome', {
      connection: { type: 'string' },
      user: { type: ['string', 'null'], description: 'null when anonymous' },
      expiresAt: { type: ['integer', 'null'], description: 'ms since the epoch; the server closes with 4001 then unless refreshed' }
    }, ['connection', 'user', 'expiresAt'])
  },
  subscribed: {
    summary: 'The streams accepted; with `since`, `gaps` lists those whose history does not reach back.',
    payload: frame('subscribed', { streams: { type: 'array', items: STREAM_NAME }, gaps: { type: 'array', items: STREAM_NAME }, id: CORRELATION }, ['streams'])
  },
  unsubscribed: { summary: 'The streams released.', payload: frame('unsubscribed', { streams: { type: 'array', items: STREAM_NAME }, id: CORRELATION }, ['streams']) },
  pong: { summary: 'Answer to ping.', payload: frame('pong', { id: CORRELATION }) },
  refreshed: { summary: 'Answer to refresh.', payload: frame('refreshed', { expiresAt: { type: 'integer' }, id: CORRELATION }, ['expiresAt']) },
  error: {
    summary: 'One per refused stream or bad frame; the connection stays open.',
    payload: frame('error', {
      code: { type: 'string', enum: ['BAD_REQUEST', 'UNKNOWN_EVENT', 'UNKNOWN_STREAM', 'FORBIDDEN', 'TOO_MANY_SUBSCRIPTIONS', 'RATE_LIMITED', 'UNAUTHORIZED'] },
      stream: STREAM_NAME,
      message: { type: 'string' },
      id: CORRELATION
    }, ['code', 'message'])
  },
  gap: {
    summary: 'Messages of these streams were lost on the way and history could not fill the hole: refetch their state.',
    payload: frame('gap', { streams: { type: 'array', items: STREAM_NAME } }, ['streams'])
  }
}

function streamMessage (stream: DeclaredStream): { name: string, title: string, summary: string, payload: JsonSchema } {
  return {
    name: stream.name,
    title: `${stream.name} message`,
    summary: stream.kind === 'private'
      ? `A notification of the private stream ${stream.name}: only the authenticated user's own.`
      : stream.kind === 'channel'
        ? `A notification of one key of the channel stream ${stream.name}, named in full (\`${stream.name}:<key>\`).`
        : `A notification of the public stream ${stream.name}.`,
    payload: frame('message', {
      stream: stream.kind === 'channel' ? { type: 'string', pattern: `^${stream.name}:[A-Za-z0-9_@.=-]{1,128}$` } : { type: 'string', const: stream.name },
      id: MESSAGE_ID,
      ts: { type: 'integer', description: 'publish time, ms since the epoch' },
      data: dataSchema(stream)
    }, ['stream', 'id', 'ts', 'data'])
  }
}

const HANDSHAKE_QUERY: JsonSchema = {
  type: 'object',
  properties: {
    ticket: { type: 'string', description: 'a one-time ticket from POST /ws/ticket' },
    token: { type: 'string', description: 'a JWT (browsers cannot set headers)' },
    auth_header: { type: 'string', description: '`Bearer <JWT>`' }
  }
}

function channelId (path: string): string {
  return path.replace(/^\//, '').replace(/[^A-Za-z0-9_-]+/g, '-') || 'root'
}

/** The AsyncAPI 3 document of the WebSocket protocol on `routes`, with one message per declared stream. */
export function asyncApiDocument (streams: Iterable<DeclaredStream>, opts: NotifyAsyncApiOptions = {}): JsonSchema {
  const declared = [...streams]
  const routes = opts.routes ?? [{ path: '/ws' }, { path: '/public', anonymous: true }]
  const channels: JsonSchema = {}
  const operations: JsonSchema = {}
  const messages: JsonSchema = {}
  for (const [name, message] of Object.entries({ ...CLIENT_FRAMES, ...SERVER_FRAMES })) messages[name] = { name, ...message }
  for (const stream of declared) messages[`stream-${stream.name}`] = streamMessage(stream)

  for (const route of routes) {
    const id = channelId(route.path)
    const visible = declared.filter((stream) => route.anonymous !== true || stream.kind === 'public' || (stream.kind === 'channel' && stream.anonymous))
    const names = [...Object.keys(CLIENT_FRAMES), ...Object.keys(SERVER_FRAMES), ...visible.map((stream) => `stream-${stream.name}`)]
    channels[id] = {
      address: route.path,
      title: route.path,
      description: route.anonymous === true
        ? 'Anonymous WebSocket route: public streams only.'
        : 'Authenticated WebSocket route: one credential on the handshake (query `ticket`, `token` or `auth_header`, or an `Authorization: Bearer` header); a bad one answers HTTP 401 before the upgrade.',
      messages: Object.fromEntries(names.map((name) => [name, { $ref: `#/components/messages/${name}` }])),
      ...(route.anonymous === true ? {} : { bindings: { ws: { query: HANDSHAKE_QUERY, bindingVersion: '0.1.0' } } })
    }
    const ref = (name: string): JsonSchema => ({ $ref: `#/channels/${id}/messages/${name}` })
    for (const name of Object.keys(CLIENT_FRAMES)) {
      operations[`${id}-receive-${name}`] = { action: 'receive', channel: { $ref: `#/channels/${id}` }, summary: CLIENT_FRAMES[name].summary, messages: [ref(name)] }
    }
    for (const name of Object.keys(SERVER_FRAMES)) {
      operations[`${id}-send-${name}`] = { action: 'send', channel: { $ref: `#/channels/${id}` }, summary: SERVER_FRAMES[name].summary, messages: [ref(name)] }
    }
    for (const stream of visible) {
      operations[`${id}-send-stream-${stream.name}`] = {
        action: 'send',
        channel: { $ref: `#/channels/${id}` },
        summary: `Delivers ${stream.name} messages to the sockets subscribed to it.`,
        messages: [ref(`stream-${stream.name}`)]
      }
    }
  }
  return {
    asyncapi: '3.0.0',
    info: opts.info ?? { title: 'notify-edge', version: '1.0.0' },
    ...(opts.servers === undefined ? {} : { servers: opts.servers }),
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { messages }
  }
}

async function fastifyNotifyAsyncApi (app: FastifyInstance, opts: NotifyAsyncApiOptions): Promise<void> {
  const path = opts.path ?? '/asyncapi.json'
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('asyncapi.path must start with /')
  if (opts.routes !== undefined && (!Array.isArray(opts.routes) || !opts.routes.every((route) => typeof route?.path === 'string'))) {
    throw new InvalidOptionError('asyncapi.routes must be an array of { path, anonymous }')
  }
  // Built once: the declarations and routes are fixed at registration.
  const document = JSON.stringify(asyncApiDocument(app.notify.streams.values(), opts))
  app.get(path, { schema: { hide: true } as FastifySchema }, async (_request, reply) => reply.type('application/json').send(document))
}

export const notifyAsyncApi = fp(fastifyNotifyAsyncApi, {
  fastify: '5.x',
  name: 'notify-edge-asyncapi',
  dependencies: ['notify-edge-notify']
})
export default notifyAsyncApi
