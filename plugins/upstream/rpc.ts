// RPC over the socket (SPEC section 13): a declared method is served by an HTTP route, the app's
// own in this process (through Fastify's injection: its schema, hooks and error handler apply,
// no socket, no hop) or a backend's (a dedicated edge, over pooled HTTP). Either way the route sees
// the caller: `request.notifyPrincipal`. Its JSON answer becomes the `result`; a 4xx/5xx becomes
// an `error` frame `RPC_FAILED` with the route's status and message.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { InboundCaller, RpcFrame } from '../inbound.js'
import type { Principal } from '../principal.js'
import { Deadlines } from '../util.js'
import { upstreamError } from './answers.js'
import { BackendFailure, BackendTimeout, type BackendAnswer, type BackendClient } from './backend-client.js'

/** A method clients may call. */
export interface RpcMethod {
  /** The route's HTTP method. @default 'POST' */
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /**
   * The route: a path of this app (`/orders/:orderId`), or a backend's URL (a dedicated edge).
   * `:name` segments are filled from the call's `data`; the rest of `data` is the JSON body, or
   * the query string for GET and DELETE.
   */
  url: string
  /** Let anonymous connections call it (the route then sees a null user). @default false */
  anonymous?: boolean
  /** TypeBox schema of the call's `data`: types the client's `rpc()` (the route's own schema validates). */
  request?: object
  /** TypeBox schema of the route's answer: types what `rpc()` resolves with. */
  response?: object
}

/** Declares methods once, for the edge and the client (`typeof methods`, as `defineStreams`). */
export function defineMethods<const Declaration extends Record<string, RpcMethod>> (methods: Declaration): Declaration {
  return methods
}

/** Where a call goes, once mapped: the target's method, path with query, and JSON body. */
export interface RpcRequest {
  principal: Principal
  method: string
  path: string
  body: unknown
  timeout: number
}

/** Serves one mapped call; rejects with BackendTimeout or BackendFailure. */
export type RpcTarget = (req: RpcRequest) => Promise<BackendAnswer>

export const RPC_CALL_HEADER = 'x-notify-rpc-call'
const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])
const IN_QUERY = new Set(['GET', 'DELETE'])
const PARAM = /:([A-Za-z0-9_]+)/g

/**
 * The app's own routes, through `app.inject`: the caller rides in a header holding a random id
 * that maps to its principal for the call's duration, so nothing from the network can name one.
 *
 * A call that times out is answered TIMEOUT and its late answer dropped; the route runs on to its
 * end. No abort signal goes with the injection: light-my-request's request ignores an abort once
 * its payload is read (it is read at once), so the signal ended nothing, and it cost about a third
 * of an in-process call (an AbortController and the listeners hung on the request stream for it).
 */
export class InProcessRoutes {
  readonly calls = new Map<string, Principal>()
  readonly #prefix = randomBytes(16).toString('base64url')
  #serial = 0
  // One timer for every pending call (the timeout is the same for all), not one each.
  #deadlines: { ms: number, deadlines: Deadlines } | null = null

  constructor (private readonly app: FastifyInstance) {}

  /** The `onRequest` hook that tells a route who called it. */
  readonly identify = (request: { headers: Record<string, unknown>, notifyPrincipal: Principal | null }): void => {
    const call = request.headers[RPC_CALL_HEADER]
    if (typeof call === 'string') request.notifyPrincipal = this.calls.get(call) ?? null
  }

  readonly target: RpcTarget = async (req) => {
    const call = `${this.#prefix}.${++this.#serial}`
    this.calls.set(call, req.principal)
    try {
      // The callback form: without one, inject() returns a chainable builder that copies its
      // options and starts on the next tick. `validate: false`: these options are always well formed.
      const injected = new Promise<LightMyRequestResponse>((resolve, reject) => {
        this.app.inject({
          method: req.method as 'POST',
          url: req.path,
          headers: req.body === undefined ? { [RPC_CALL_HEADER]: call } : { [RPC_CALL_HEADER]: call, 'content-type': 'application/json' },
          payload: req.body === undefined ? undefined : JSON.stringify(req.body),
          validate: false
        }, (err, res) => err == null && res !== undefined ? resolve(res) : reject(err ?? new Error('no response')))
      })
      const answer = await this.#within(req.timeout).race(injected)
      if (answer === null) {
        injected.catch(() => {})
        throw new BackendTimeout(`no answer within ${req.timeout} ms`)
      }
      const res = answer.value
      const type = res.headers['content-type']
      return { status: res.statusCode, body: res.payload, json: typeof type === 'string' && type.includes('json') }
    } catch (err) {
      if (err instanceof BackendTimeout) throw err
      throw new BackendFailure((err as Error).message)
    } finally {
      this.calls.delete(call)
    }
  }

  #within (ms: number): Deadlines {
    if (this.#deadlines?.ms !== ms) this.#deadlines = { ms, deadlines: new Deadlines(ms) }
    return this.#deadlines.deadlines
  }
}

/** A backend's routes, over the dedicated edge's pooled client. */
export function remoteTarget (client: BackendClient, origin: string): RpcTarget {
  return (req) => client.send({ method: req.method, url: `${origin}${req.path}`, principal: req.principal, body: req.body, timeout: req.timeout })
}

interface Declared { name: string, method: string, origin: string | null, path: string, anonymous: boolean }

/** Checks the declared methods; a URL's origin says where it is served (null: this app). */
export function declareMethods (methods: unknown): Declared[] {
  if (methods === undefined) return []
  if (methods === null || typeof methods !== 'object' || Array.isArray(methods)) throw new InvalidOptionError('rpc.methods must be an object of methods by name')
  return Object.entries(methods as Record<string, RpcMethod>).map(([name, def]) => {
    if (!/^[A-Za-z0-9_.-]{1,128}$/.test(name)) throw new InvalidOptionError(`rpc method name ${name.slice(0, 64)} must match [A-Za-z0-9_.-]{1,128}`)
    const method = def?.method ?? 'POST'
    if (!HTTP_METHODS.has(method)) throw new InvalidOptionError(`rpc method ${name}: method must be one of ${[...HTTP_METHODS].join(', ')}`)
    if (def.anonymous !== undefined && typeof def.anonymous !== 'boolean') throw new InvalidOptionError(`rpc method ${name}: anonymous must be a boolean`)
    const url = def?.url
    if (typeof url === 'string' && url.startsWith('/')) return { name, method, origin: null, path: url, anonymous: def.anonymous === true }
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new InvalidOptionError(`rpc method ${name}: url must be a path (/orders) or an http(s) URL`)
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidOptionError(`rpc method ${name}: url must be http(s)`)
    return { name, method, origin: parsed.origin, path: `${parsed.pathname}${parsed.search}`, anonymous: def.anonymous === true }
  })
}

/** The path (with `:params` filled and, for GET/DELETE, the query) and body of a call; a string says why not. */
export function mapCall (method: string, template: string, data: unknown): { path: string, body: unknown } | string {
  const params = new Set([...template.matchAll(PARAM)].map((m) => m[1]))
  const isObject = data !== null && typeof data === 'object' && !Array.isArray(data)
  if ((params.size > 0 || IN_QUERY.has(method)) && data !== undefined && !isObject) return 'data must be an object'
  const rest: Record<string, unknown> = isObject ? { ...(data as Record<string, unknown>) } : {}
  let problem: string | null = null
  const path = template.replace(PARAM, (_, name: string) => {
    const value = rest[name]
    delete rest[name]
    if (typeof value !== 'string' && typeof value !== 'number') problem ??= `data.${name} must be a string or a number`
    return encodeURIComponent(String(value))
  })
  if (problem !== null) return problem
  // No data is an empty object: a route with a body schema gets one whether it is injected or called over HTTP.
  if (!IN_QUERY.has(method)) return { path, body: params.size > 0 || data === undefined ? rest : data }
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries(rest)) {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return `data.${name.slice(0, 32)} must be a string, a number or a boolean`
    query.append(name, String(value))
  }
  const search = query.toString()
  return { path: search === '' ? path : `${path}${path.includes('?') ? '&' : '?'}${search}`, body: undefined }
}

export interface RpcLimits {
  timeout: number
  /** Calls one connection may have in flight. */
  maxInFlight: number
}

interface Method { method: string, path: string, anonymous: boolean, target: RpcTarget }

/** Serves `rpc` frames. */
export class Rpc {
  readonly #inFlight = new WeakMap<InboundCaller, number>()

  constructor (private readonly methods: ReadonlyMap<string, Method>, private readonly limits: RpcLimits, private readonly app: FastifyInstance) {}

  call (caller: InboundCaller, frame: RpcFrame): void {
    const { id } = frame
    const method = this.methods.get(frame.method)
    if (method === undefined) return caller.send(upstreamError('UNKNOWN_METHOD', 'unknown method', { id }))
    if (caller.principal.user === null && !method.anonymous) return caller.send(upstreamError('FORBIDDEN', 'this method needs an authenticated connection', { id }))
    const mapped = mapCall(method.method, method.path, frame.data)
    if (typeof mapped === 'string') return caller.send(upstreamError('BAD_REQUEST', mapped, { id }))
    const inFlight = this.#inFlight.get(caller) ?? 0
    if (inFlight >= this.limits.maxInFlight) {
      return caller.send(upstreamError('RATE_LIMITED', `at most ${this.limits.maxInFlight} calls in flight`, { id }))
    }
    this.#inFlight.set(caller, inFlight + 1)
    method.target({ principal: caller.principal, method: method.method, path: mapped.path, body: mapped.body, timeout: this.limits.timeout })
      // Calls in flight on one socket often finish together: their results share its writes.
      .then((answer) => caller.sendBatched !== undefined ? caller.sendBatched(answerFrame(answer, id)) : caller.send(answerFrame(answer, id)), (err: unknown) => {
        if (err instanceof BackendTimeout) return caller.send(upstreamError('TIMEOUT', err.message, { id }))
        this.app.log.warn({ err, method: frame.method }, 'notify rpc failed')
        caller.send(upstreamError('RPC_FAILED', 'the method\'s service did not answer', { id, status: 502 }))
      })
      .finally(() => {
        const left = (this.#inFlight.get(caller) ?? 1) - 1
        if (left === 0) this.#inFlight.delete(caller)
        else this.#inFlight.set(caller, left)
      })
  }
}

/** `result` with the route's JSON (or text) body, or `RPC_FAILED` with its status and message. */
export function answerFrame (answer: BackendAnswer, id: RpcFrame['id']): string {
  let data: unknown = answer.body === '' ? null : answer.body
  if (answer.json && answer.body !== '') {
    try {
      data = JSON.parse(answer.body)
    } catch {
      return upstreamError('RPC_FAILED', 'the method answered malformed JSON', { id, status: 502 })
    }
  }
  if (answer.status < 400) return JSON.stringify({ event: 'result', id, data })
  const message = (data as { message?: unknown } | null)?.message
  return upstreamError('RPC_FAILED', typeof message === 'string' ? message.slice(0, 512) : `the method answered ${answer.status}`, { id, status: answer.status })
}
