// Stream declarations (SPEC sections 2 and 12), read by publishing, the streams routes and the
// typed layer alike: one place turns what the server declares into what the plugins use.
import { Ajv, type ValidateFunction } from 'ajv'
import { InvalidOptionError } from './errors.js'
import type { HistoryBounds } from './history/store.js'
import type { ClientPublishPolicy } from './inbound.js'
import type { Principal } from './principal.js'
import { STREAM_NAME, channelTopic, privateTopic, publicTopic } from './topics.js'
import type { StreamKind } from './typed.js'
import { integerBetween, positiveInteger } from './util.js'

/** What a channel stream's `authorize` is asked about: `room:lobby` is `{ stream: 'room', key: 'lobby' }`. */
export interface ChannelTarget {
  stream: string
  key: string
}

interface CommonDefinition {
  /** `[A-Za-z0-9_-]{1,64}` */
  name: string
  /** JSON schema that a published message's `data` must satisfy; a TypeBox schema also types `data`. */
  schema?: object
  /**
   * Keep this stream's messages (per topic: per user for a private stream, per key for a channel)
   * so that clients can resume with `since`. Needs the history plugin. @default no history
   */
  history?: HistoryBounds
  /**
   * Lets clients publish to this (public or channel) stream over their socket (SPEC section 13):
   * `true`, a hook deciding per message, or a backend hook's URL. Needs the upstream plugin.
   * @default clients may not publish
   */
  clientPublish?: ClientPublishPolicy
}

/** A public or private stream. */
export interface TopicStreamDefinition extends CommonDefinition {
  /** public: one topic for all; private: one topic per user, seen only by that user. */
  kind: 'public' | 'private'
  /** Decides whether a principal may subscribe; false → `FORBIDDEN`. @default everyone (private: own topic only) */
  authorize?: (principal: Principal, stream: string) => boolean | Promise<boolean>
}

/**
 * A channel's `authorize` served by a backend (a dedicated edge, SPEC section 13): the edge POSTs
 * `{ principal: { user }, target: { stream, key } }` to `url` with the caller signed, and the
 * backend answers `{ "allow": true }`. A yes is kept by the connection for `cacheTtl` ms (0: asked
 * every time); a no, a failure or no answer within `authorizeTimeout` refuses and is never kept.
 */
export interface RemoteAuthorize {
  /** http(s) URL of the backend's hook (`notifyBackend`'s `authorizeHook`). */
  url: string
  /** How long one connection may reuse a yes for the same key, in ms. @default 30000 */
  cacheTtl?: number
}

/** A channel stream (SPEC section 12): one topic per key, subscribed as `<stream>:<key>`. */
export interface ChannelStreamDefinition extends CommonDefinition {
  kind: 'channel'
  /**
   * Decides, per key and at subscribe time, whether a principal may subscribe (sync or async);
   * false, a throw or no answer within `authorizeTimeout` → `FORBIDDEN` for that key only.
   * A channel needs this hook or `openAccess: true`. On a dedicated edge it may be a backend's
   * URL instead (`{ url }`, see `RemoteAuthorize`).
   */
  authorize?: ((principal: Principal, channel: ChannelTarget) => boolean | Promise<boolean>) | RemoteAuthorize
  /** Every principal may subscribe to every key, with no hook: the explicit opt-in. @default false */
  openAccess?: boolean
  /** Anonymous sockets (`/public`) may subscribe too (`authorize` then sees `user: null`). @default false */
  anonymous?: boolean
  /** Presence lists the channel's members and sends `join` / `leave` frames to its subscribers. @default false */
  members?: boolean
  /** How long `authorize` may take, in ms. @default 3000 */
  authorizeTimeout?: number
}

/** A stream the server declares: public, private or channel. */
export type StreamDefinition = TopicStreamDefinition | ChannelStreamDefinition

/** A declared stream as the plugins use it. */
export interface DeclaredStream extends Readonly<CommonDefinition> {
  readonly kind: StreamKind
  /** The declared hook: a channel's takes a `ChannelTarget`, the others' the stream name; undefined when a backend decides. */
  readonly authorize?: ((principal: Principal, stream: string) => boolean | Promise<boolean>) |
  ((principal: Principal, channel: ChannelTarget) => boolean | Promise<boolean>)
  /** Channels: the backend that decides instead of a function (the upstream plugin asks it), or null. */
  readonly remoteAuthorize: Readonly<Required<RemoteAuthorize>> | null
  /** Channels: every principal may subscribe without a hook. */
  readonly openAccess: boolean
  /** Channels: anonymous sockets may subscribe. */
  readonly anonymous: boolean
  /** Channels: presence lists members and pushes join / leave. */
  readonly members: boolean
  /** Channels: how long `authorize` may take, in ms. */
  readonly authorizeTimeout: number
  /** The bus topic of this stream for a user (private), a key (channel) or everyone (public: argument ignored). */
  topic (target: string | null): string
  /** Why `data` fails the stream's schema, or null when it passes (or there is no schema). */
  dataProblem (data: unknown): string | null
}

/**
 * Declares streams once, for the server, remote publishers and the client: the names, kinds and
 * TypeBox schemas are kept as types (`typeof streams`), without `as const`.
 */
export function defineStreams<const Declaration extends readonly StreamDefinition[]> (streams: Declaration): Declaration {
  return streams
}

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

function dataCheck (ajv: Ajv, stream: string, schema: object | undefined): (data: unknown) => string | null {
  if (schema === undefined) return () => null
  let validate: ValidateFunction
  try {
    validate = ajv.compile(schema)
  } catch (err) {
    throw new InvalidOptionError(`stream ${stream}: bad schema: ${(err as Error).message}`)
  }
  return (data) => validate(data) ? null : ajv.errorsText(validate.errors)
}

const HTTP_URL = /^https?:\/\/[^/]/
const isHttpUrl = (value: unknown): value is string => typeof value === 'string' && HTTP_URL.test(value)

/** A backend hook's URL, given as the URL or as `{ url }`; undefined when `value` is neither. */
export function hookUrl (value: unknown): string | undefined {
  if (isHttpUrl(value)) return value
  const url = value !== null && typeof value === 'object' ? (value as { url?: unknown }).url : undefined
  return isHttpUrl(url) ? url : undefined
}

function clientPublishCheck ({ name, kind, clientPublish }: StreamDefinition): void {
  if (clientPublish === undefined) return
  if (kind === 'private') throw new InvalidOptionError(`stream ${name}: clients publish to public and channel streams only`)
  if (clientPublish !== true && typeof clientPublish !== 'function' && hookUrl(clientPublish) === undefined) {
    throw new InvalidOptionError(`stream ${name}: clientPublish must be true, a function, or an http(s) URL (as text or { url })`)
  }
}

const DEFAULT_AUTHORIZE_CACHE_TTL = 30_000

/** `authorize` checked: a function, or (a channel's only) a backend's `{ url, cacheTtl? }`. */
function remoteAuthorizeOf (def: StreamDefinition): DeclaredStream['remoteAuthorize'] {
  const { authorize, name } = def
  if (authorize === undefined || typeof authorize === 'function') return null
  if (def.kind !== 'channel' || authorize === null || typeof authorize !== 'object') {
    throw new InvalidOptionError(`stream ${name}: authorize must be a function${def.kind === 'channel' ? ' or { url }' : ''}`)
  }
  const { url, cacheTtl, ...rest } = authorize as unknown as Record<string, unknown>
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) throw new InvalidOptionError(`stream ${name}: authorize takes url and cacheTtl, not ${unknown}`)
  if (!isHttpUrl(url)) throw new InvalidOptionError(`stream ${name}: authorize.url must be an http(s) URL, got ${String(url)}`)
  return Object.freeze({ url, cacheTtl: integerBetween(`stream ${name}: authorize.cacheTtl`, cacheTtl, DEFAULT_AUTHORIZE_CACHE_TTL, 0, 3_600_000) })
}

const CHANNEL_ONLY = ['openAccess', 'anonymous', 'members', 'authorizeTimeout'] as const
const DEFAULT_AUTHORIZE_TIMEOUT = 3000

/** A channel's own settings, checked; a stream of another kind may set none of them. */
function channelOptions (def: StreamDefinition): Pick<DeclaredStream, typeof CHANNEL_ONLY[number]> {
  if (def.kind !== 'channel') {
    const set = CHANNEL_ONLY.find((option) => (def as unknown as Record<string, unknown>)[option] !== undefined)
    if (set !== undefined) throw new InvalidOptionError(`stream ${def.name}: only a channel stream takes ${set}`)
    return { openAccess: false, anonymous: false, members: false, authorizeTimeout: DEFAULT_AUTHORIZE_TIMEOUT }
  }
  for (const option of ['openAccess', 'anonymous', 'members'] as const) {
    if (def[option] !== undefined && typeof def[option] !== 'boolean') throw new InvalidOptionError(`stream ${def.name}: ${option} must be a boolean`)
  }
  const openAccess = def.openAccess === true
  // Who may read a room is a decision, never a default: no hook and no opt-in is a mistake.
  if (def.authorize === undefined && !openAccess) {
    throw new InvalidOptionError(`stream ${def.name}: a channel needs an authorize hook or openAccess: true`)
  }
  if (def.authorize !== undefined && openAccess) {
    throw new InvalidOptionError(`stream ${def.name}: give a channel authorize or openAccess: true, not both`)
  }
  return {
    openAccess,
    anonymous: def.anonymous === true,
    members: def.members === true,
    authorizeTimeout: positiveInteger(`stream ${def.name}: authorizeTimeout`, def.authorizeTimeout, DEFAULT_AUTHORIZE_TIMEOUT)
  }
}

function topicOf (def: StreamDefinition, prefix: string): (target: string | null) => string {
  const name = def.name
  if (def.kind === 'private') return (user) => privateTopic(prefix, name, user as string)
  if (def.kind === 'channel') return (key) => channelTopic(prefix, name, key as string)
  // Built once: every connection to a public stream then holds the same string.
  const shared = publicTopic(prefix, name)
  return () => shared
}

/**
 * Validates stream definitions and compiles each schema once; throws
 * `FST_NOTIFY_INVALID_OPTION` for anything off.
 */
export function declareStreams (definitions: unknown, prefix: string): Map<string, DeclaredStream> {
  if (!Array.isArray(definitions) || definitions.length === 0) {
    throw new InvalidOptionError('streams must be a non-empty array')
  }
  const ajv = new Ajv()
  const streams = new Map<string, DeclaredStream>()
  for (const def of definitions as StreamDefinition[]) {
    if (typeof def?.name !== 'string' || !STREAM_NAME.test(def.name)) {
      throw new InvalidOptionError(`stream name must match ${STREAM_NAME}, got ${String(def?.name)}`)
    }
    if (streams.has(def.name)) throw new InvalidOptionError(`stream ${def.name} is declared twice`)
    if (def.kind !== 'public' && def.kind !== 'private' && def.kind !== 'channel') {
      throw new InvalidOptionError(`stream ${def.name}: kind must be 'public', 'private' or 'channel'`)
    }
    const remoteAuthorize = remoteAuthorizeOf(def)
    clientPublishCheck(def)

    const channel = channelOptions(def)
    const dataProblem = dataCheck(ajv, def.name, def.schema)
    const history = historyBounds(def.name, def.history)
    const authorize = remoteAuthorize === null ? def.authorize as DeclaredStream['authorize'] : undefined
    streams.set(def.name, Object.freeze({ ...def, ...channel, authorize, remoteAuthorize, history, topic: topicOf(def, prefix), dataProblem }))
  }
  return streams
}
