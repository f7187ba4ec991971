import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { connect, type NotifyClient, type NotifyClientEvents, type NotifyClientOptions, type NotifyMessage } from '../client/index.js'
import { ticket, token } from './helpers.js'

type Test = { teardown: (fn: () => unknown) => void }
type Edge = { app: FastifyInstance, http: string, ws: string }
type Recorded = { [K in keyof Events]: { event: K, payload: Events[K] } }[keyof Events]
type Events = NotifyClientEvents & { message: NotifyMessage }

const EVENTS = ['connected', 'disconnected', 'subscribed', 'gap', 'refreshed', 'state', 'error'] as const

/** Queues everything a client emits, and the messages of the streams it subscribes to, to be awaited in order. */
export class Recorder {
  readonly queue: Recorded[] = []
  readonly #waiters: Array<() => void> = []

  constructor (readonly client: NotifyClient) {
    for (const event of EVENTS) client.on(event, (payload) => this.#push({ event, payload } as Recorded))
  }

  #push (entry: Recorded): void {
    this.queue.push(entry)
    for (const wake of this.#waiters.splice(0)) wake()
  }

  /** Subscribes to `stream`, queuing its messages as `message` events. */
  subscribe (stream: string): () => void {
    return this.client.subscribe(stream, (payload) => this.#push({ event: 'message', payload }))
  }

  /** Removes and returns the first queued `event` matching `match`, waiting up to `timeout` ms. */
  async next<K extends keyof Events> (event: K, match: (payload: Events[K]) => boolean = () => true, timeout = 5000): Promise<Events[K]> {
    const deadline = Date.now() + timeout
    for (;;) {
      const index = this.queue.findIndex((e) => e.event === event && match(e.payload as Events[K]))
      if (index >= 0) return this.queue.splice(index, 1)[0].payload as Events[K]
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no ${event} within ${timeout} ms; have ${JSON.stringify(this.queue)}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** Takes every queued entry of `event` without waiting. */
  taken<K extends keyof Events> (event: K): Array<Events[K]> {
    const out: Array<Events[K]> = []
    for (let i = 0; i < this.queue.length;) {
      if (this.queue[i].event === event) out.push(this.queue.splice(i, 1)[0].payload as Events[K])
      else i++
    }
    return out
  }
}

export interface SdkOptions extends Partial<NotifyClientOptions> {
  /** Lifetime of the JWT behind each ticket (a number is seconds, or '2s', '1h'). @default '1h' */
  expiresIn?: number | string
  path?: string
}

/** An SDK client on `edge` for `user`, fetching a fresh ticket per connect; closed when the test ends. */
export function sdk (t: Test, edge: Edge, user: string, options: SdkOptions = {}): { client: NotifyClient, events: Recorder, tickets: () => number } {
  const { expiresIn = '1h', path = '/ws', ...rest } = options
  let tickets = 0
  const client = connect({
    url: `${edge.ws}${path}`,
    getTicket: () => { tickets++; return ticket(edge.http, token(edge.app, user, expiresIn)) },
    WebSocket,
    backoff: { min: 20, max: 200 },
    ...rest
  })
  t.teardown(() => client.close())
  return { client, events: new Recorder(client), tickets: () => tickets }
}

/** The server side of every open /ws connection of `app`. */
export function serverConnections (app: FastifyInstance, path = '/ws') {
  return [...app.notifyStreams.get(path)!.connections]
}
