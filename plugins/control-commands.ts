// The admin actions of SPEC section 15 as every caller states them (the admin API, `app.notify`,
// the publisher), checked once here, and as they travel on the bus to every instance.
import { BadAdminRequestError, ControlDisabledError } from './errors.js'
import { STREAM_NAME, userIdProblem } from './topics.js'

/** A revoked token, or every token of a user issued before a time; kept until `expiresAt` (ms). */
export type Revocation =
  | { jti: string, expiresAt: number }
  | { user: string, before: number, expiresAt: number }

/** What `app.notify.revoke()` and `POST /admin/revoke` take: a token's `jti` and `exp` (seconds, as in the JWT), or a user and a time in ms. */
export type RevokeInput = { jti: string, exp: number } | { user: string, before: number }

/** A user, and the streams (`order`, or a channel `room:lobby`) to subscribe or unsubscribe every open connection of theirs to. */
export interface SubscriptionInput { user: string, streams: string[] }

/** Who asked, for the audit log: the admin key's id, or what the app passes. */
export interface ControlCaller { by?: string }

/** What an action reached. */
export interface ControlResult {
  /** Instances that acted on it (null when the transport cannot tell). */
  instances: number | null
  /** Open connections it touched across those instances (null when the transport cannot tell). */
  connections: number | null
}

/** Acting on users wherever they are connected (SPEC section 15). */
export interface NotifyControl {
  /** Closes every connection of `user` on every instance with 4003. */
  disconnect (input: { user: string }, caller?: ControlCaller): Promise<ControlResult>
  /** Refuses the tokens until they expire (ticket, handshake, `refresh`), and closes the connections opened with them with 4003. */
  revoke (input: RevokeInput, caller?: ControlCaller): Promise<ControlResult>
  /** Subscribes every open connection of the user; each gets the usual `subscribed` frame (or `error` frames). */
  subscribe (input: SubscriptionInput, caller?: ControlCaller): Promise<ControlResult>
  /** Unsubscribes every open connection of the user; each gets the usual `unsubscribed` frame. */
  unsubscribe (input: SubscriptionInput, caller?: ControlCaller): Promise<ControlResult>
}

export type ControlAction = keyof NotifyControl
export const CONTROL_ACTIONS: readonly ControlAction[] = ['disconnect', 'revoke', 'subscribe', 'unsubscribe']

/** A checked action, as it travels on the bus. */
export type ControlCommand =
  | { action: 'disconnect', user: string }
  | { action: 'revoke', revocation: Revocation }
  | { action: 'subscribe' | 'unsubscribe', user: string, streams: string[] }

/** The bus topic every instance listens to for commands; stream topics are `<prefix>/p/…` and `<prefix>/u/…`. */
export function controlTopic (prefix: string): string {
  return `${prefix}/control`
}

const MAX_JTI_LENGTH = 256
const MAX_STREAMS = 100
const MAX_STREAM_LENGTH = 256

function fields (input: unknown, allowed: string[]): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new BadAdminRequestError('the body must be a JSON object')
  const extra = Object.keys(input).filter((key) => !allowed.includes(key))
  if (extra.length > 0) throw new BadAdminRequestError(`unexpected field ${extra[0].slice(0, 64)}`)
  return input as Record<string, unknown>
}

function user (value: unknown): string {
  const problem = userIdProblem(value)
  if (problem !== null) throw new BadAdminRequestError(`user ${problem}`)
  return value as string
}

function epoch (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new BadAdminRequestError(`${name} must be a positive integer`)
  return value
}

/** Checks stream names against the declared ones: a channel `<stream>:<key>` counts as its stream. */
function streamList (value: unknown, declared: ReadonlySet<string>): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_STREAMS) throw new BadAdminRequestError(`streams must be an array of 1 to ${MAX_STREAMS} names`)
  for (const name of value) {
    if (typeof name !== 'string' || name.length > MAX_STREAM_LENGTH) throw new BadAdminRequestError('a stream is a string')
    const base = name.split(':', 1)[0]
    if (!STREAM_NAME.test(base) || !declared.has(base)) throw new BadAdminRequestError(`unknown stream ${name.slice(0, 64)}`)
  }
  return [...new Set(value as string[])]
}

/** Turns a caller's input into a command, or throws `FST_NOTIFY_BAD_ADMIN_REQUEST` (400). */
export function controlCommand (action: ControlAction, input: unknown, declared: ReadonlySet<string>, maxTokenLifetime: number): ControlCommand {
  switch (action) {
    case 'disconnect':
      return { action, user: user(fields(input, ['user']).user) }
    case 'revoke': {
      const body = fields(input, ['jti', 'exp', 'user', 'before'])
      if (body.jti !== undefined) {
        if (body.user !== undefined || body.before !== undefined) throw new BadAdminRequestError('give jti and exp, or user and before')
        if (typeof body.jti !== 'string' || body.jti.length === 0 || body.jti.length > MAX_JTI_LENGTH) throw new BadAdminRequestError(`jti must be a string of 1 to ${MAX_JTI_LENGTH} characters`)
        return { action, revocation: { jti: body.jti, expiresAt: epoch('exp', body.exp) * 1000 } }
      }
      if (body.exp !== undefined) throw new BadAdminRequestError('exp goes with jti')
      const before = epoch('before', body.before)
      return { action, revocation: { user: user(body.user), before, expiresAt: before + maxTokenLifetime } }
    }
    case 'subscribe':
    case 'unsubscribe': {
      const body = fields(input, ['user', 'streams'])
      return { action, user: user(body.user), streams: streamList(body.streams, declared) }
    }
    default:
      throw new BadAdminRequestError('unknown action')
  }
}

/** What the target of a command is, for the audit log. */
export function commandTarget (command: ControlCommand): Record<string, unknown> {
  if (command.action !== 'revoke') return { ...command }
  return { action: command.action, ...command.revocation }
}

/** `app.notify`'s control methods where there is nothing to control through. */
export function noControl (why: string): NotifyControl {
  const refuse = async (): Promise<never> => { throw new ControlDisabledError(why) }
  return { disconnect: refuse, revoke: refuse, subscribe: refuse, unsubscribe: refuse }
}
