// The hooks that decide on what clients send, behind one signature whether they run in this
// process (a function) or in a backend (a URL a dedicated edge POSTs to): a deny, a hook that
// throws, a backend that is dead or answers garbage all refuse (`FORBIDDEN`); one that is too slow
// answers `TIMEOUT` within the deadline. Nothing waits longer, and nothing else waits for it.
import type { ClientPublishHook, ClientPublishVerdict, PublishTarget } from '../inbound.js'
import type { Principal } from '../principal.js'
import { within } from '../util.js'
import { BackendTimeout, type BackendClient } from './backend-client.js'

/** A hook's decision, checked. */
export type Decision =
  | { allow: true, data: unknown }
  | { allow: false, code: 'FORBIDDEN' | 'TIMEOUT', message: string, reason?: string }

/** Decides on one client publish. Never rejects. */
export type PublishGate = (principal: Principal, target: PublishTarget, data: unknown) => Promise<Decision>

/** Decides whether a principal may use one key of a channel (SPEC 12's `authorize`). Never rejects. */
export type AuthorizeGate = (principal: Principal, target: PublishTarget) => Promise<boolean>

const REASON = /^[A-Za-z0-9_.-]{1,64}$/
const MAX_MESSAGE = 256
const refused = (message: string): Decision => ({ allow: false, code: 'FORBIDDEN', message })
const late = (ms: number): Decision => ({ allow: false, code: 'TIMEOUT', message: `the publish hook did not answer within ${ms} ms` })

/** A hook's answer as a decision; anything that is not a verdict refuses. */
export function decisionOf (verdict: unknown, data: unknown): Decision {
  if (verdict === true) return { allow: true, data }
  if (verdict === false) return refused('not allowed to publish')
  if (verdict === null || typeof verdict !== 'object') return refused('the publish hook gave no verdict')
  const { allow, reason, message } = verdict as Record<string, unknown>
  if (allow === true) return { allow: true, data: 'data' in verdict ? (verdict as { data: unknown }).data : data }
  if (allow !== false) return refused('the publish hook gave no verdict')
  const text = typeof message === 'string' && message.length > 0 ? message.slice(0, MAX_MESSAGE) : 'not allowed to publish'
  return typeof reason === 'string' && REASON.test(reason) ? { allow: false, code: 'FORBIDDEN', message: text, reason } : refused(text)
}

/** Everyone may publish, as sent. */
export const openGate: PublishGate = async (_principal, _target, data) => ({ allow: true, data })

/** A hook in this process, sync or async, given `timeout` ms; `onError` hears of a throw. */
export function inProcessGate (hook: ClientPublishHook, timeout: number, onError: (err: unknown) => void): PublishGate {
  return async (principal, target, data) => {
    try {
      const answer = await within(timeout, Promise.resolve(hook(principal, target, data)))
      return answer === null ? late(timeout) : decisionOf(answer.value, data)
    } catch (err) {
      onError(err)
      return refused('the publish hook failed')
    }
  }
}

/**
 * A backend's hook: `POST url` with `{ principal: { user }, target, data }` (and the caller token)
 * answers 200 with a verdict as JSON, as a function would return it.
 */
export function remoteGate (client: BackendClient, url: string, timeout: number, onError: (err: unknown) => void): PublishGate {
  return async (principal, target, data) => {
    const verdict = await askBackend(client, url, timeout, principal, { principal: { user: principal.user }, target, data }, onError)
    if (verdict === TIMED_OUT) return late(timeout)
    return verdict === FAILED ? refused('the publish hook failed') : decisionOf(verdict, data)
  }
}

/** A backend's `authorize`: `POST url` with `{ principal: { user }, target }` answers `{ "allow": true }` or refuses. */
export function remoteAuthorize (client: BackendClient, url: string, timeout: number, onError: (err: unknown) => void): AuthorizeGate {
  return async (principal, target) => {
    const verdict = await askBackend(client, url, timeout, principal, { principal: { user: principal.user }, target }, onError)
    if (verdict === TIMED_OUT) onError(new BackendTimeout(`backend authorize ${url} did not answer within ${timeout} ms`))
    return verdict !== null && typeof verdict === 'object' && (verdict as { allow?: unknown }).allow === true
  }
}

const TIMED_OUT = Symbol('timed out')
const FAILED = Symbol('failed')

async function askBackend (
  client: BackendClient, url: string, timeout: number, principal: Principal, body: unknown, onError: (err: unknown) => void
): Promise<unknown> {
  try {
    const answer = await client.send({ method: 'POST', url, principal, body, timeout })
    if (answer.status !== 200 || !answer.json) throw new Error(`backend hook ${url} answered ${answer.status}`)
    return JSON.parse(answer.body) as ClientPublishVerdict
  } catch (err) {
    if (err instanceof BackendTimeout) return TIMED_OUT
    onError(err)
    return FAILED
  }
}
