import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { BusUnavailableError, DeclarationMismatchError, EdgeRefusedError, InvalidOptionError } from '../errors.js'
import type { CheckedPublish, Deliver, Sent } from '../publishing.js'
import type { PublisherTransport } from './transport.js'

/** Publishing through an edge's `POST /notifications` (SPEC section 5). */
export interface NotifyPublisherHttpOptions {
  /** The edge's base URL, e.g. `http://notify-edge:3000` (`https:` too); the route is appended. */
  url: string
  /** The edge's publish API key (`x-api-key`). */
  apiKey: string
  /** The publish route on the edge. @default '/notifications' */
  path?: string
}

interface EdgeAnswer { status: number, body: Record<string, unknown> }

function parseUrl (opts: NotifyPublisherHttpOptions): URL {
  let url: URL
  try {
    url = new URL(opts.path ?? '/notifications', opts.url)
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

/** How many instances had a subscriber, as far as the edge's answer tells (its `online`/`offline`). */
function receivers (body: Record<string, unknown>, user: string | null): number | null {
  if (typeof body.online === 'boolean') return body.online ? 1 : 0
  if (Array.isArray(body.offline)) return body.offline.includes(user) ? 0 : 1
  return null
}

/** The edge's answer mapped onto the publisher's coded errors: the caller sees what an embedded edge would throw. */
function outcome ({ status, body }: EdgeAnswer, users: Array<string | null>): Sent[] {
  if (status === 202) {
    const ids = Array.isArray(body.ids) ? body.ids as string[] : [body.id as string]
    if (ids.length === users.length && ids.every((id) => typeof id === 'string')) {
      return ids.map((id, i) => ({ id, receivers: receivers(body, users[i]) }))
    }
    throw new BusUnavailableError(`the edge answered 202 without ${users.length} id(s)`)
  }
  const reason = `${status} ${String(body.code ?? '')} ${String(body.message ?? '')}`.trim()
  // The publish passed the same checks here: a 400 there means the edge declares the stream otherwise.
  if (status === 400) throw new DeclarationMismatchError(reason)
  if (status >= 500) throw new BusUnavailableError(`edge answered ${reason}`)
  throw new EdgeRefusedError(reason)
}

/** Publishes over HTTP to an edge, one request per publish, on a keep-alive agent closed with the app. */
export function httpTransport (opts: NotifyPublisherHttpOptions, timeout: number): PublisherTransport {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError('http must be { url, apiKey }')
  const url = parseUrl(opts)
  if (typeof opts.apiKey !== 'string' || opts.apiKey.length < 16) throw new InvalidOptionError('http.apiKey must be a string of at least 16 characters')
  const https = url.protocol === 'https:'
  const agent = https ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
  const request = https ? httpsRequest : httpRequest

  function post ({ input }: CheckedPublish): Promise<EdgeAnswer> {
    const body = JSON.stringify(input)
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: 'POST',
        agent,
        signal: AbortSignal.timeout(timeout),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-api-key': opts.apiKey }
      }, (res) => { readJson(res).then((json) => resolve({ status: res.statusCode ?? 0, body: json }), reject) })
      req.once('error', reject)
      req.end(body)
    })
  }

  const deliver: Deliver = async (checked) => {
    let answer: EdgeAnswer
    try {
      answer = await post(checked)
    } catch (err) {
      throw new BusUnavailableError(`edge unreachable: ${(err as Error).message}`)
    }
    return outcome(answer, checked.users)
  }

  return {
    deliver,
    async ready () {},
    async close () { agent.destroy() }
  }
}
