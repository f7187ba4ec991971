import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js'
import { BusUnavailableError } from '../errors.js'
import type { GrpcPublishRequest, GrpcPublishStreamReply } from '../grpc/proto.js'
import type { EdgeAnswer } from './edge-answer.js'

// A publisher's one long-lived `PublishStream` call: each publish is a message with a fresh `ref`,
// its answer the reply with that `ref`. A broken call fails what it had under way with 503, as an
// unreachable edge fails an HTTP publish, and the next publish opens a new call.

type Call = ClientDuplexStream<GrpcPublishRequest, GrpcPublishStreamReply>

export interface PublishStreamOptions {
  /** Opens a call (with the key in its metadata). */
  open (): Call
  /** A message's answer not back within it fails it with 503, as a unary call's deadline does. */
  timeout: number
  /** The edge's gRPC status as an HTTP status (edge-answer.ts speaks HTTP). */
  httpStatus (code: number): number
  /** A failed call's status as the edge's answer (as a unary call's). */
  answerOf (err: ServiceError): EdgeAnswer
  /** The status an edge without the method ends the call with (UNIMPLEMENTED). */
  unimplemented: number
}

interface Waiting { resolve (answer: EdgeAnswer | null): void, reject (err: Error): void, timer: NodeJS.Timeout }

export interface PublishStream {
  /** The edge's answer; `null` when the edge has no PublishStream (publish with unary Publish). */
  send (request: GrpcPublishRequest): Promise<EdgeAnswer | null>
  /** Ends the call: the edge answers what it read, then ends it. */
  close (): void
}

export function publishStream (opts: PublishStreamOptions): PublishStream {
  let current: { call: Call, waiting: Map<number, Waiting> } | null = null
  let unsupported = false
  let lastRef = 0

  function answerOf (reply: GrpcPublishStreamReply): EdgeAnswer {
    if (reply.status === 0) return { status: 202, body: { ids: reply.ids, offline: reply.offline } }
    return { status: opts.httpStatus(reply.status), body: { code: reply.errorCode, message: reply.errorMessage } }
  }

  function open (): NonNullable<typeof current> {
    const call = opts.open()
    const state = { call, waiting: new Map<number, Waiting>() }
    call.on('data', (reply: GrpcPublishStreamReply) => {
      const waiting = state.waiting.get(reply.ref)
      if (waiting === undefined) return
      state.waiting.delete(reply.ref)
      clearTimeout(waiting.timer)
      waiting.resolve(answerOf(reply))
    })
    const broken = (err?: ServiceError): void => {
      if (current === state) current = null
      if (err?.code === opts.unimplemented) unsupported = true
      for (const waiting of state.waiting.values()) {
        clearTimeout(waiting.timer)
        // Not published by an edge without the method: the caller publishes it by unary Publish.
        if (unsupported) waiting.resolve(null)
        // The call's status is every waiting message's answer, as it would be a unary call's.
        else if (err !== undefined) waiting.resolve(opts.answerOf(err))
        else waiting.reject(new BusUnavailableError('edge unreachable: the edge ended the stream'))
      }
      state.waiting.clear()
    }
    call.on('error', broken)
    call.on('end', () => { broken(); call.end() })
    return state
  }

  return {
    send (request) {
      if (unsupported) return Promise.resolve(null)
      current ??= open()
      const { call, waiting } = current
      lastRef = (lastRef + 1) >>> 0
      const ref = lastRef
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(ref)
          reject(new BusUnavailableError(`edge answered no reply within ${opts.timeout} ms`))
        }, opts.timeout)
        waiting.set(ref, { resolve, reject, timer })
        call.write({ ...request, ref })
      })
    },
    close () { current?.call.end() }
  }
}
