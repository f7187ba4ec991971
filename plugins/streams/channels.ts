// Channel names on the wire (SPEC section 12): a subscription item is a stream name, or
// `<stream>:<key>` for a channel stream; and the channel's per-key authorization, bounded in time.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { ChannelTarget, DeclaredStream } from '../declarations.js'
import { InvalidOptionError } from '../errors.js'
import type { Inbound } from '../inbound.js'
import type { Principal } from '../principal.js'
import { MAX_KEY_LENGTH, keyProblem } from '../topics.js'
import { within } from '../util.js'
import type { ErrorCode } from './protocol.js'

/** Longest name an error frame echoes: a stream name, `:` and a key. */
export const MAX_NAME_ECHO = 64 + 1 + MAX_KEY_LENGTH

/** A subscription item, resolved: the declared stream and, for a channel, the key. */
export interface Target {
  stream: DeclaredStream
  key: string | null
}

/** Why a subscription item names nothing that can be subscribed to. */
export interface Unresolved {
  code: ErrorCode
  message: string
}

/** The stream (and key) an item names, or why it names none. */
export function resolveTarget (streams: ReadonlyMap<string, DeclaredStream>, name: string): Target | Unresolved {
  const colon = name.indexOf(':')
  const stream = streams.get(colon < 0 ? name : name.slice(0, colon))
  if (stream === undefined) return { code: 'UNKNOWN_STREAM', message: 'unknown stream' }
  if (colon < 0) {
    if (stream.kind === 'channel') return { code: 'BAD_REQUEST', message: `${stream.name} is a channel: name a key, as ${stream.name}:<key>` }
    return { stream, key: null }
  }
  if (stream.kind !== 'channel') return { code: 'BAD_REQUEST', message: `${stream.name} is not a channel: it takes no key` }
  const key = name.slice(colon + 1)
  const problem = keyProblem(key)
  if (problem !== null) return { code: 'BAD_REQUEST', message: `channel key ${problem}` }
  return { stream, key }
}

export function isUnresolved (target: Target | Unresolved): target is Unresolved {
  return 'code' in target
}

/**
 * Whether `principal` may subscribe to `key` of a channel. A hook that throws, rejects, answers
 * anything but `true` or takes longer than the stream's `authorizeTimeout` refuses; a throw or a
 * timeout is logged once, and a late answer is ignored.
 */
export function authorizeKey (stream: DeclaredStream, principal: Principal, key: string, log: FastifyBaseLogger): Promise<boolean> {
  if (stream.openAccess) return Promise.resolve(true)
  const hook = stream.authorize as (principal: Principal, channel: ChannelTarget) => boolean | Promise<boolean>
  const failed = (err: unknown): false => {
    log.warn({ err, stream: stream.name, user: principal.user }, 'notify channel authorize hook failed: refusing the key')
    return false
  }
  let answer: boolean | Promise<boolean>
  try {
    answer = hook(principal, { stream: stream.name, key })
  } catch (err) {
    return Promise.resolve(failed(err))
  }
  if (typeof (answer as Promise<boolean> | null)?.then !== 'function') return Promise.resolve(answer === true)
  return within(stream.authorizeTimeout, Promise.resolve(answer)).then((done) => {
    if (done !== null) return done.value === true
    log.warn({ stream: stream.name, user: principal.user, timeout: stream.authorizeTimeout }, 'notify channel authorize hook timed out: refusing the key')
    return false
  }, failed)
}

/**
 * The upstream plugin's side of a streams route (client publish, RPC, a backend's channel
 * `authorize`), or null without it; refuses to register a route when a channel's `authorize` is a
 * backend's and nothing would ask it.
 */
export function inboundOf (app: FastifyInstance): Inbound | null {
  const inbound = app.hasDecorator('notifyUpstream') ? (app as unknown as { notifyUpstream: Inbound }).notifyUpstream : null
  const remote = [...app.notify.streams.values()].find((stream) => stream.remoteAuthorize !== null)
  if (remote !== undefined && inbound === null) {
    throw new InvalidOptionError(`stream ${remote.name}: authorize is a backend URL: register the upstream plugin (with backend.callerSecret) before the streams routes`)
  }
  return inbound
}
