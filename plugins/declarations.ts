// Stream declarations (SPEC section 2), read by publishing, the streams routes and the typed
// layer alike: one place turns what the server declares into what the plugins use.
import { Ajv, type ValidateFunction } from 'ajv'
import { InvalidOptionError } from './errors.js'
import type { HistoryBounds } from './history/store.js'
import type { ClientPublishPolicy } from './inbound.js'
import type { Principal } from './principal.js'
import { STREAM_NAME, privateTopic, publicTopic } from './topics.js'
import type { StreamKind } from './typed.js'
import { positiveInteger } from './util.js'

/** A stream the server declares. */
export interface StreamDefinition {
  /** `[A-Za-z0-9_-]{1,64}` */
  name: string
  /** public: one topic for all; private: one topic per user, seen only by that user. */
  kind: StreamKind
  /** Decides whether a principal may subscribe; false → `FORBIDDEN`. @default everyone (private: own topic only) */
  authorize?: (principal: Principal, stream: string) => boolean | Promise<boolean>
  /** JSON schema that a published message's `data` must satisfy; a TypeBox schema also types `data`. */
  schema?: object
  /**
   * Keep this stream's messages (per topic: per user for a private stream) so that clients can
   * resume with `since`. Needs the history plugin. @default no history
   */
  history?: HistoryBounds
  /**
   * Lets clients publish to this (public or channel) stream over their socket (SPEC section 13):
   * `true`, a hook deciding per message, or a backend hook's URL. Needs the upstream plugin.
   * @default clients may not publish
   */
  clientPublish?: ClientPublishPolicy
}

/** A declared stream as the plugins use it. */
export interface DeclaredStream extends Readonly<StreamDefinition> {
  /** The bus topic of this stream for a user (private) or for everyone (public, user ignored). */
  topic (user: string | null): string
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

function clientPublishCheck ({ name, kind, clientPublish }: StreamDefinition): void {
  if (clientPublish === undefined) return
  if (kind === 'private') throw new InvalidOptionError(`stream ${name}: clients publish to public and channel streams only`)
  const url = typeof clientPublish === 'string' && /^https?:\/\/[^/]/.test(clientPublish)
  if (clientPublish !== true && typeof clientPublish !== 'function' && !url) {
    throw new InvalidOptionError(`stream ${name}: clientPublish must be true, a function or an http(s) URL`)
  }
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
    if (def.kind !== 'public' && def.kind !== 'private') {
      throw new InvalidOptionError(`stream ${def.name}: kind must be 'public' or 'private'`)
    }
    if (def.authorize !== undefined && typeof def.authorize !== 'function') {
      throw new InvalidOptionError(`stream ${def.name}: authorize must be a function`)
    }
    clientPublishCheck(def)
    const dataProblem = dataCheck(ajv, def.name, def.schema)
    const history = historyBounds(def.name, def.history)
    const name = def.name
    // Built once: every connection to a public stream then holds the same string.
    const shared = def.kind === 'public' ? publicTopic(prefix, name) : ''
    const topic = def.kind === 'public'
      ? () => shared
      : (user: string | null) => privateTopic(prefix, name, user as string)
    streams.set(name, Object.freeze({ ...def, history, topic, dataProblem }))
  }
  return streams
}
