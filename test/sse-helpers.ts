import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http'

/** One event as EventSource would dispatch it (comments are counted, not queued). */
export interface SseEvent {
  event: string
  id: string | undefined
  data: string
  retry?: number
  json: Record<string, any>
}

/**
 * A real HTTP client reading a `text/event-stream` response as EventSource parses it (events,
 * `id`, `retry`, comments), queuing each event to be awaited in order. Not EventSource itself:
 * it does not reconnect; a test does that, with `lastEventId`, or uses Chromium.
 */
export class SseClient {
  readonly events: SseEvent[] = []
  status = 0
  headers: IncomingMessage['headers'] = {}
  comments = 0
  ended = false
  /** The id of the last event that had one, as EventSource keeps it. */
  lastEventId = ''
  response: IncomingMessage | null = null
  readonly #waiters: Array<() => void> = []
  #buffer = ''
  #pending: { event: string, data: string[], id?: string, retry?: number } = { event: 'message', data: [] }
  #request: ClientRequest | null = null

  /** Opens `url`; resolves once the response's head arrived (any status). */
  static async open (url: string, headers: Record<string, string> = {}, opts: { paused?: boolean } = {}): Promise<SseClient> {
    const client = new SseClient()
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
        client.response = res
        client.status = res.statusCode ?? 0
        client.headers = res.headers
        res.setEncoding('utf8')
        if (opts.paused !== true) res.on('data', (chunk: string) => client.#read(chunk))
        let body = ''
        if (client.status !== 200) res.on('data', (chunk: string) => { body += chunk })
        res.on('end', () => {
          client.ended = true
          if (client.status !== 200) {
            try {
              client.body = JSON.parse(body)
            } catch {}
          }
          client.#wake()
        })
        res.on('close', () => {
          client.ended = true
          client.#wake()
        })
        resolve()
      })
      client.#request = req
      req.on('error', (err) => {
        client.ended = true
        client.#wake()
        reject(err)
      })
      req.end()
    })
    return client
  }

  body: Record<string, any> | null = null

  /** Starts reading a client opened with `paused`. */
  resume (): void {
    this.response!.on('data', (chunk: string) => this.#read(chunk))
  }

  #read (chunk: string): void {
    this.#buffer += chunk
    let end: number
    while ((end = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 1)
      this.#line(line)
    }
  }

  #line (line: string): void {
    const pending = this.#pending
    if (line === '') {
      if (pending.id !== undefined) this.lastEventId = pending.id
      if (pending.data.length > 0) {
        const data = pending.data.join('\n')
        let json: Record<string, any> = {}
        try {
          json = JSON.parse(data)
        } catch {}
        this.events.push({ event: pending.event, id: pending.id, data, retry: pending.retry, json })
        this.#wake()
      }
      this.#pending = { event: 'message', data: [] }
      return
    }
    if (line.startsWith(':')) {
      this.comments++
      this.#wake()
      return
    }
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') pending.event = value
    else if (field === 'data') pending.data.push(value)
    else if (field === 'id') pending.id = value
    else if (field === 'retry') pending.retry = Number(value)
  }

  #wake (): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }

  /** Waits until `test` holds, or fails after `ms`. */
  async until (test: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms
    while (!test()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => e.data)).slice(0, 2000)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  /** The first queued event named `event` at or after index `from`. */
  async next (event: string, from = 0, ms = 5000): Promise<SseEvent> {
    let found: SseEvent | undefined
    await this.until(() => (found = this.events.slice(from).find((e) => e.event === event)) !== undefined, ms, `event ${event}`)
    return found!
  }

  /** Every `message` event's data, parsed. */
  messages (): Array<Record<string, any>> {
    return this.events.filter((e) => e.event === 'message').map((e) => e.json)
  }

  close (): void {
    this.#request?.destroy()
  }
}

/**
 * EventSource for the client SDK on Node 20 (which has none), over `SseClient`: named events
 * with `data` and `lastEventId`, and `error` with readyState CLOSED once the response fails or
 * ends. It does not reconnect by itself: the SDK's own reconnect (with `?lastEventId=`) is tested.
 */
export class NodeEventSource {
  readyState = 0
  readonly #listeners = new Map<string, Array<(event: { data?: unknown, lastEventId?: string }) => void>>()
  #client: SseClient | null = null
  #closed = false

  constructor (url: string) {
    SseClient.open(url).then((client) => {
      this.#client = client
      if (this.#closed) return client.close()
      if (client.status !== 200) return this.#fail()
      this.readyState = 1
      let seen = 0
      const pump = (): void => {
        for (; seen < client.events.length; seen++) {
          const event = client.events[seen]
          for (const listener of this.#listeners.get(event.event) ?? []) listener({ data: event.data, lastEventId: client.lastEventId })
        }
        if (client.ended) this.#fail()
        else if (!this.#closed) client.until(() => client.events.length > seen || client.ended, 60_000).then(pump, () => this.#fail())
      }
      pump()
    }, () => this.#fail())
  }

  addEventListener (type: string, listener: (event: { data?: unknown, lastEventId?: string }) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener])
  }

  close (): void {
    this.#closed = true
    this.readyState = 2
    this.#client?.close()
  }

  #fail (): void {
    if (this.#closed) return
    this.close()
    this.#closed = false
    for (const listener of this.#listeners.get('error') ?? []) listener({})
    this.#closed = true
  }
}
