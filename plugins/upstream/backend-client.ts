// How a dedicated edge reaches its backends (remote RPC methods and hooks): one pooled undici
// Agent, a deadline per request, the caller's identity signed into a header, and never a retry:
// a request that may have had an effect is answered once, as it went.
import { Agent, request } from 'undici'
import type { Principal } from '../principal.js'
import { within } from '../util.js'
import { CALLER_HEADER, signCallerToken } from './caller-token.js'

export interface BackendClientOptions {
  /** Shared with the backends, which verify the `x-notify-caller` token with it. */
  callerSecret: string
  /** Seconds a caller token is valid. */
  callerTokenTtl: number
  /** Connections kept per backend origin. */
  connections: number
  /** Largest answer read, in bytes. */
  maxAnswerBytes: number
}

/** What a backend answered. */
export interface BackendAnswer {
  status: number
  /** The body, as text. */
  body: string
  /** Whether it said it is JSON. */
  json: boolean
}

/** The backend did not answer within the deadline. */
export class BackendTimeout extends Error {}

/** The backend could not be reached, or its answer was cut off or too large. */
export class BackendFailure extends Error {}

export interface BackendRequest {
  method: string
  url: string
  principal: Principal
  /** JSON body; undefined: none. */
  body?: unknown
  timeout: number
}

export class BackendClient {
  readonly #agent: Agent
  constructor (private readonly opts: BackendClientOptions) {
    this.#agent = new Agent({ connections: opts.connections, keepAliveTimeout: 10_000 })
  }

  async send (req: BackendRequest): Promise<BackendAnswer> {
    const signal = AbortSignal.timeout(req.timeout)
    const headers: Record<string, string> = { [CALLER_HEADER]: signCallerToken(this.opts.callerSecret, req.principal, this.opts.callerTokenTtl) }
    if (req.body !== undefined) headers['content-type'] = 'application/json'
    try {
      const res = await request(req.url, {
        dispatcher: this.#agent,
        method: req.method as 'POST',
        headers,
        body: req.body === undefined ? undefined : JSON.stringify(req.body),
        signal
      })
      const body = await this.#read(res.body)
      const type = res.headers['content-type']
      return { status: res.statusCode, body, json: typeof type === 'string' && type.includes('json') }
    } catch (err) {
      if (signal.aborted) throw new BackendTimeout(`no answer within ${req.timeout} ms`)
      if (err instanceof BackendFailure) throw err
      throw new BackendFailure((err as Error).message)
    }
  }

  async #read (body: AsyncIterable<Buffer>): Promise<string> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of body) {
      size += chunk.length
      if (size > this.opts.maxAnswerBytes) throw new BackendFailure(`answer over ${this.opts.maxAnswerBytes} bytes`)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  }

  /** Closes the pool: requests in flight end within their deadline, or are cut at `timeout`. */
  async close (timeout: number): Promise<void> {
    const closed = await within(timeout, this.#agent.close()).catch(() => null)
    if (closed === null) await this.#agent.destroy()
  }
}
