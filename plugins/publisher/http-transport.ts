import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { BusUnavailableError, ControlUnavailableError, InvalidOptionError, PresenceDisabledError, PresenceUnavailableError } from '../errors.js'
import type { Deliver, PresenceSource } from '../publishing.js'
import type { StreamPresence, UserPresence } from '../presence/store.js'
import { refusal, sentFrom, type EdgeAnswer } from './edge-answer.js'
import type { PublisherTransport } from './transport.js'
import type { ControlSender } from './control.js'
import type { ControlResult } from '../control-commands.js'

/** Publishing through an edge's `POST /notifications` (SPEC section 5). */
export interface NotifyPublisherHttpOptions {
  /** The edge's base URL, e.g. `http://notify-edge:3000` (`https:` too); the route is appended. */
  url: string
  /** The edge's publish API key (`x-api-key`). */
  apiKey: string
  /** The publish route on the edge. @default '/notifications' */
  path?: string
  /** The edge's presence route, asked by `app.notify.presence()` (SPEC section 8). @default '/presence' */
  presencePath?: string
  /**
   * The edge's admin API key: `app.notify.disconnect()`, `revoke()`, `subscribe()` and
   * `unsubscribe()` go to its `POST /admin/…`. Without it they answer 501. @default undefined
   */
  adminApiKey?: string
  /** Prefix of the edge's admin routes. @default '/admin' */
  adminPath?: string
}

// A presence query for many users goes in several GETs, each URL well under Node's 16 KB header limit.
const MAX_QUERY_CHARS = 8000

function parseUrl (opts: NotifyPublisherHttpOptions, path: string | undefined, fallback: string): URL {
  let url: URL
  try {
    url = new URL(path ?? fallback, opts.url)
  } catch {
    throw new InvalidOptionError(`http.url must be an absolute http(s) URL, got ${String(opts.url)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidOptionError('http.url must be http: or https:')
  return url
}

async function readJson (res: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const chunk of res) chunks.push(chunk as Buffer)
  try {
    return JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>
  } catch {
    return {}
  }
}

/** `?user=a&user=b…` in as few queries as fit the URL limit. */
function userQueries (users: string[]): Array<{ users: string[], query: URLSearchParams }> {
  const batches: Array<{ users: string[], query: URLSearchParams }> = []
  let batch = { users: [] as string[], query: new URLSearchParams() }
  // The query's length so far, counted as it grows rather than serialized again for each user.
  let length = 0
  for (const user of users) {
    const added = `&${new URLSearchParams({ user })}`.length
    if (batch.users.length > 0 && length + added > MAX_QUERY_CHARS) {
      batches.push(batch)
      batch = { users: [], query: new URLSearchParams() }
      length = 0
    }
    batch.users.push(user)
    batch.query.append('user', user)
    length += added
  }
  return [...batches, batch]
}

/** Publishes over HTTP to an edge, one request per publish, on a keep-alive agent closed with the app. */
export function httpTransport (opts: NotifyPublisherHttpOptions, timeout: number): PublisherTransport {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError('http must be { url, apiKey }')
  const url = parseUrl(opts, opts.path, '/notifications')
  const presenceUrl = parseUrl(opts, opts.presencePath, '/presence')
  if (typeof opts.apiKey !== 'string' || opts.apiKey.length < 16) throw new InvalidOptionError('http.apiKey must be a string of at least 16 characters')
  const https = url.protocol === 'https:'
  const agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
  const request = https ? httpsRequest : httpRequest

  /** The edge's answer; rejects only when there was none (unreachable, no answer within `timeout`). */
  function call (target: URL, body?: string, key = opts.apiKey): Promise<EdgeAnswer> {
    const headers: Record<string, string | number> = { 'x-api-key': key }
    if (body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    return new Promise((resolve, reject) => {
      const req = request(target, { method: body === undefined ? 'GET' : 'POST', agent, signal: AbortSignal.timeout(timeout), headers },
        (res) => { readJson(res).then((json) => resolve({ status: res.statusCode ?? 0, body: json }), reject) })
      req.once('error', reject)
      req.end(body)
    })
  }

  const deliver: Deliver = async ({ input, users, keys }) => {
    let answer: EdgeAnswer
    try {
      answer = await call(url, JSON.stringify(input))
    } catch (err) {
      throw new BusUnavailableError(`edge unreachable: ${(err as Error).message}`)
    }
    return sentFrom(answer, keys ?? users)
  }

  /** GET /presence?…: the body of a 200, or the coded error the edge's answer amounts to. */
  async function ask (query: URLSearchParams): Promise<Record<string, unknown>> {
    const target = new URL(presenceUrl)
    target.search = query.toString()
    let answer: EdgeAnswer
    try {
      answer = await call(target)
    } catch (err) {
      throw new PresenceUnavailableError(`edge unreachable: ${(err as Error).message}`)
    }
    if (answer.status === 200) return answer.body
    // The edge registers the route only with presence.
    if (answer.status === 404) throw new PresenceDisabledError(`the edge has no ${presenceUrl.pathname} (presence: false?)`)
    throw refusal(answer, PresenceUnavailableError)
  }

  const adminKey = opts.adminApiKey
  if (adminKey !== undefined && (typeof adminKey !== 'string' || adminKey.length < 16)) throw new InvalidOptionError('http.adminApiKey must be a string of at least 16 characters')
  const adminBase = parseUrl(opts, opts.adminPath, '/admin')
  const httpControl: ControlSender = async (action, input) => {
    let answer: EdgeAnswer
    try {
      answer = await call(new URL(`${adminBase.pathname}/${action}`, adminBase), JSON.stringify(input), adminKey)
    } catch (err) {
      throw new ControlUnavailableError(`edge unreachable: ${(err as Error).message}`)
    }
    if (answer.status === 200) return answer.body as unknown as ControlResult
    throw refusal(answer, ControlUnavailableError)
  }

  const presence: PresenceSource = {
    async users (users) {
      const answers = await Promise.all(userQueries(users).map(async (batch) => ({ batch, body: await ask(batch.query) })))
      const found = new Map<string, UserPresence>()
      for (const { batch, body } of answers) {
        for (const user of batch.users) found.set(user, (body.users as Record<string, UserPresence>)?.[user])
      }
      return users.map((user) => found.get(user) ?? { connections: 0, streams: [] })
    },
    async stream (name, members) {
      // A channel key arrives as `room:lobby`; the edge is asked `?stream=room&key=lobby`.
      const colon = name.indexOf(':')
      const query: Record<string, string> = colon < 0 ? { stream: name } : { stream: name.slice(0, colon), key: name.slice(colon + 1) }
      const found = await ask(new URLSearchParams(query)) as unknown as StreamPresence
      const counts = { connections: found.connections, users: found.users }
      return members === true ? { ...counts, members: found.members ?? [] } : counts
    }
  }

  return {
    deliver,
    presence,
    control: adminKey === undefined ? undefined : httpControl,
    async ready () {},
    async close () { agent.destroy() }
  }
}
