import type { Metadata, ServerDuplexStream, ServiceError } from '@grpc/grpc-js'
import type { GrpcPublishReply, GrpcPublishRequest, GrpcPublishStreamReply } from './proto.js'

// `PublishStream`: many publishes on one call, so that the per-call cost of grpc-js and http2
// (a stream, headers turned into Metadata, three frames per answer) is paid once, not per publish.
// Each message is published as a unary Publish would be and gets one reply carrying its `ref`.

/** How a refused publish reads in gRPC terms (`status` is the code a unary call would end with). */
export interface Refusal { status: number, code: string, message: string }

export interface PublishStreamDeps {
  /** Whether the call's `x-api-key` is one of the edge's. */
  authorized (metadata: Metadata): boolean
  /** Publishes one request as Publish does (its `traceparent` is the call's). */
  publish (request: GrpcPublishRequest, traceparent: unknown): Promise<GrpcPublishReply>
  refusal (err: unknown): Refusal
  /** The status a call ends with for `err` (UNAUTHENTICATED for a bad key). */
  serviceError (err: unknown): ServiceError
  /** Thrown (as a value) for a call without a valid key. */
  badKey (): Error
  /** Most messages of one call under way (read, reply not yet written); past it reading pauses. */
  maxInFlight: number
}

export interface PublishStreams {
  handle (call: ServerDuplexStream<GrpcPublishRequest, GrpcPublishStreamReply>): void
  /** Stops reading every open call, lets what was read be answered, then ends the calls with OK. */
  close (): Promise<void>
}

export function publishStreams (deps: PublishStreamDeps): PublishStreams {
  // Each open call's "stop reading and end once answered".
  const open = new Set<() => Promise<void>>()

  function handle (call: ServerDuplexStream<GrpcPublishRequest, GrpcPublishStreamReply>): void {
    if (!deps.authorized(call.metadata)) {
      call.emit('error', deps.serviceError(deps.badKey()))
      return
    }
    const traceparent = call.metadata.get('traceparent')[0]
    let inFlight = 0
    let closing = false
    let finished = false
    let done: () => void = () => {}
    const ended = new Promise<void>((resolve) => { done = resolve })

    const finish = (): void => {
      if (finished) return
      finished = true
      open.delete(stop)
      done()
    }
    const settle = (): void => {
      if (closing && inFlight === 0 && !finished) {
        call.end()
        finish()
      }
    }
    const answered = (): void => {
      inFlight--
      if (closing) settle()
      else if (inFlight < deps.maxInFlight && call.isPaused()) call.resume()
    }
    const answer = (reply: GrpcPublishStreamReply): void => {
      // A cancelled call takes no more writes; the publish happened all the same.
      if (call.cancelled || finished) answered()
      else call.write(reply, answered)
    }

    call.on('data', (request: GrpcPublishRequest) => {
      // Read before the pause took effect, during shutdown: left unanswered, so not published.
      if (closing) return
      inFlight++
      if (inFlight >= deps.maxInFlight) call.pause()
      const ref = request.ref
      deps.publish(request, traceparent).then(
        ({ ids, offline }) => answer({ ref, ids, offline, status: 0, errorCode: '', errorMessage: '' }),
        (err: unknown) => {
          const { status, code, message } = deps.refusal(err)
          answer({ ref, ids: [], offline: [], status, errorCode: code, errorMessage: message })
        })
    })
    // The caller is done sending: answer what is under way, then end with OK.
    call.on('end', () => { closing = true; settle() })
    call.on('cancelled', finish)
    call.on('error', finish)
    call.on('close', finish)

    const stop = async (): Promise<void> => {
      closing = true
      call.pause()
      settle()
      await ended
    }
    open.add(stop)
  }

  return {
    handle,
    async close () { await Promise.all([...open].map((stop) => stop())) }
  }
}
