import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Metadata as GrpcMetadata, MethodDefinition, sendUnaryData, Server, ServerCredentials, ServerUnaryCall, ServiceError } from '@grpc/grpc-js'
import { apiKeyMatcher } from '../api-key.js'
import { BadApiKeyError, DataRequiredError, InvalidOptionError, PayloadTooLargeError } from '../errors.js'
import { ensureIdempotency } from '../idempotency/index.js'
import { parseJsonPayload } from '../json-payload.js'
import type { PublishInput, PublishResult } from '../notify.js'
import { positiveInteger, within } from '../util.js'
import { grpcCodes, notificationsService, type GrpcPublishReply, type GrpcPublishRequest } from './proto.js'
import { ingressTrace } from '../tracing.js'
import { publishStreams, type Refusal } from './stream.js'

export * from './proto.js'

export interface NotifyGrpcOptions {
  /** Key (or keys, while rotating) that callers send in metadata `x-api-key`. Required. */
  apiKey: string | string[]
  /** Port to serve on; 0 picks a free one (read `app.notifyGrpc.port`). @default 50051 */
  port?: number
  /** Address to bind. @default '127.0.0.1' */
  host?: string
  /** TLS and the like (`ServerCredentials.createSsl(...)`). @default ServerCredentials.createInsecure() */
  credentials?: ServerCredentials
  /**
   * Largest request message, in bytes; over it Publish fails with RESOURCE_EXHAUSTED
   * (`FST_NOTIFY_PAYLOAD_TOO_LARGE`) and PublishStream refuses the message. @default 65536
   */
  maxMessageBytes?: number
  /** Milliseconds `app.close()` lets calls in flight finish before cancelling them. @default 5000 */
  closeTimeout?: number
}

/** `app.notifyGrpc`: the server, and the port it listens on once the app is ready. */
export interface NotifyGrpc {
  readonly server: Server
  readonly port: number | null
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The gRPC ingress (see `NotifyGrpc`). */
    notifyGrpc: NotifyGrpc
  }
}

/** Most messages of one PublishStream call under way at once; past it the edge stops reading. */
const STREAM_IN_FLIGHT = 100

/** A request as the edge's deserializer hands it on: marked when over the size limit. */
type SizedRequest = GrpcPublishRequest & { tooLarge?: true }

function input (request: GrpcPublishRequest, maxBytes: number): PublishInput {
  if (request.dataJson === '') throw new DataRequiredError()
  const data = parseJsonPayload(request.dataJson, { maxBytes })
  // What was given passes on, so that the publish rules refuse what does not fit the stream.
  const fields: Record<string, unknown> = { stream: request.stream, data }
  if (request.users.length > 0) fields.users = request.users
  if (request.key !== '') fields.key = request.key
  if (request.keys.length > 0) fields.keys = request.keys
  return fields as PublishInput
}

function reply (result: PublishResult): GrpcPublishReply {
  const ids = 'ids' in result ? result.ids : [result.id]
  // Presence fills `offline` in (SPEC section 8); without it the list stays empty.
  const offline = 'offline' in result && Array.isArray(result.offline) ? result.offline as string[] : []
  return { ids, offline }
}

async function fastifyNotifyGrpc (app: FastifyInstance, opts: NotifyGrpcOptions): Promise<void> {
  // Loaded here, not at import: an app without the gRPC ingress does not pay for it.
  const { Metadata, Server, ServerCredentials, status } = await import('@grpc/grpc-js')
  const CODES = grpcCodes(status)
  const keyMatches = apiKeyMatcher(opts.apiKey)
  const port = opts.port ?? 50051
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidOptionError('port must be an integer from 0 to 65535')
  const host = opts.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host === '') throw new InvalidOptionError('host must be a non-empty string')
  if (opts.credentials !== undefined && !(opts.credentials instanceof ServerCredentials)) {
    throw new InvalidOptionError('credentials must be @grpc/grpc-js ServerCredentials')
  }
  const credentials = opts.credentials ?? ServerCredentials.createInsecure()
  const maxMessageBytes = positiveInteger('maxMessageBytes', opts.maxMessageBytes, 65536)
  const closeTimeout = positiveInteger('closeTimeout', opts.closeTimeout, 5000)
  await ensureIdempotency(app)

  /** A refusal in gRPC terms; an unexpected error is logged and answered INTERNAL without details. */
  function refusal (err: unknown): Refusal {
    const { statusCode, code, message } = err as { statusCode?: number, code?: string, message: string }
    const grpcCode = statusCode === undefined ? undefined : CODES[statusCode]
    if (grpcCode === undefined) {
      app.log.error({ err }, 'notify edge: gRPC publish failed')
      return { status: status.INTERNAL, code: '', message: 'internal error' }
    }
    return { status: grpcCode, code: code ?? '', message }
  }

  function serviceError (err: unknown): ServiceError {
    const { status: code, code: errorCode, message } = refusal(err)
    const metadata = new Metadata()
    if (errorCode !== '') metadata.set('x-error-code', errorCode)
    return { code, details: message, metadata } as ServiceError
  }

  const authorized = (metadata: GrpcMetadata): boolean => keyMatches(metadata.get('x-api-key')[0])

  async function publishOne (request: SizedRequest, traceparent: unknown): Promise<GrpcPublishReply> {
    if (request.tooLarge === true) throw new PayloadTooLargeError(maxMessageBytes)
    const key = request.idempotencyKey === '' ? undefined : request.idempotencyKey
    const { result } = await ingressTrace(app.notifyTracer, traceparent, () =>
      app.notifyIdempotency.publish(key, input(request, maxMessageBytes)))
    return reply(result)
  }

  async function publish (call: ServerUnaryCall<GrpcPublishRequest, GrpcPublishReply>, callback: sendUnaryData<GrpcPublishReply>): Promise<void> {
    try {
      if (!authorized(call.metadata)) throw new BadApiKeyError()
      callback(null, await publishOne(call.request, call.metadata.get('traceparent')[0]))
    } catch (err) {
      callback(serviceError(err))
    }
  }

  const streams = publishStreams({
    authorized, publish: publishOne, refusal, serviceError, badKey: () => new BadApiKeyError(), maxInFlight: STREAM_IN_FLIGHT
  })
  // grpc-js would end a whole PublishStream call for one message over its limit: it lets messages
  // up to 4 × the limit through, and the edge refuses those over the limit one by one.
  const server = new Server({ 'grpc.max_receive_message_length': 4 * maxMessageBytes })
  const { service } = await notificationsService()
  const sized = (method: MethodDefinition<object, object>): MethodDefinition<object, object> => ({
    ...method,
    requestDeserialize: (bytes: Buffer) => {
      const request = method.requestDeserialize(bytes) as SizedRequest
      // Decoded all the same (at most 4 × the limit): its reply needs its `ref`.
      if (bytes.length > maxMessageBytes) request.tooLarge = true
      return request
    }
  })
  server.addService({ Publish: sized(service.Publish), PublishStream: sized(service.PublishStream) },
    { Publish: publish, PublishStream: streams.handle })
  const state: { server: Server, port: number | null } = { server, port: null }
  app.decorate('notifyGrpc', state)

  app.addHook('onReady', async () => {
    state.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, credentials, (err, bound) => err === null ? resolve(bound) : reject(err)))
    app.log.info({ port: state.port }, 'notify edge: gRPC ingress listening')
  })
  app.addHook('onClose', async () => {
    // Long-lived PublishStream calls would hold tryShutdown until the timeout: they end first.
    const stopped = streams.close().then(() => new Promise<void>((resolve) => server.tryShutdown(() => resolve())))
    if (await within(closeTimeout, stopped) === null) server.forceShutdown()
  })
}

export const notifyGrpc = fp(fastifyNotifyGrpc, {
  fastify: '5.x',
  name: 'notify-edge-grpc',
  dependencies: ['notify-edge-notify']
})
export default notifyGrpc
