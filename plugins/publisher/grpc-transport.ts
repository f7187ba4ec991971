import type { ChannelCredentials, Client, ClientDuplexStream, Metadata, ServiceError } from '@grpc/grpc-js'
import { InvalidOptionError } from '../errors.js'
import { grpcCodes, notificationsService, type GrpcPublishReply, type GrpcPublishRequest, type GrpcPublishStreamReply } from '../grpc/proto.js'
import { noPresence, type Deliver } from '../publishing.js'
import { sentFrom, type EdgeAnswer } from './edge-answer.js'
import { publishStream } from './grpc-stream.js'
import type { PublisherTransport } from './transport.js'

/** Publishing through an edge's gRPC ingress, `notify.v1.Notifications/Publish` (SPEC section 9). */
export interface NotifyPublisherGrpcOptions {
  /** The edge's gRPC address: `host:port`, or any @grpc/grpc-js target (`dns:///notify-edge:50051`). */
  address: string
  /** The edge's gRPC API key (metadata `x-api-key`). */
  apiKey: string
  /** TLS (`credentials.createSsl(...)` of @grpc/grpc-js). @default credentials.createInsecure() */
  credentials?: ChannelCredentials
}

type StreamCall = (metadata: Metadata) => ClientDuplexStream<GrpcPublishRequest, GrpcPublishStreamReply>
type PublishCall = (request: GrpcPublishRequest, metadata: Metadata, options: { deadline: number },
  callback: (err: ServiceError | null, reply?: GrpcPublishReply) => void) => void

/**
 * Publishes by gRPC to an edge, on one channel (connected lazily, reconnected by @grpc/grpc-js)
 * closed with the app: each publish a message on one long-lived `PublishStream` call (reopened
 * when it breaks), or a unary `Publish` where the edge has no such method. Each publish gets its
 * answer within `timeout`, so an edge that is down or frozen answers 503 in time.
 */
export async function grpcTransport (opts: NotifyPublisherGrpcOptions, timeout: number): Promise<PublisherTransport> {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError('grpc must be { address, apiKey }')
  if (typeof opts.address !== 'string' || opts.address === '') throw new InvalidOptionError('grpc.address must be a non-empty string')
  if (typeof opts.apiKey !== 'string' || opts.apiKey.length < 16) throw new InvalidOptionError('grpc.apiKey must be a string of at least 16 characters')
  // Loaded here, not at import: a publisher over Redis or HTTP does not pay for gRPC.
  const { ChannelCredentials, credentials, Metadata, status } = await import('@grpc/grpc-js')
  if (opts.credentials !== undefined && !(opts.credentials instanceof ChannelCredentials)) {
    throw new InvalidOptionError('grpc.credentials must be @grpc/grpc-js ChannelCredentials')
  }
  // The edge's codes mapped back to HTTP statuses, so that one mapping (edge-answer.ts) serves both.
  const statuses = new Map<number, number>(Object.entries(grpcCodes(status)).map(([http, code]) => [code, Number(http)]))
  statuses.set(status.DEADLINE_EXCEEDED, 504)
  const Notifications = await notificationsService()
  const client = new Notifications(opts.address, opts.credentials ?? credentials.createInsecure()) as unknown as Client & { Publish: PublishCall, PublishStream: StreamCall }
  /** A failed call as the edge's answer: its status, and the code of its `x-error-code` trailer. */
  const failed = (err: ServiceError): EdgeAnswer => {
    const code = err.metadata?.get('x-error-code')[0]
    return { status: statuses.get(err.code) ?? 500, body: { code: code === undefined ? status[err.code] : String(code), message: err.details } }
  }
  const metadata = new Metadata()
  metadata.set('x-api-key', opts.apiKey)
  const stream = publishStream({
    open: () => client.PublishStream(metadata),
    timeout,
    httpStatus: (code) => statuses.get(code) ?? 500,
    answerOf: failed,
    unimplemented: status.UNIMPLEMENTED
  })

  function unary (request: GrpcPublishRequest): Promise<EdgeAnswer> {
    return new Promise((resolve) => {
      client.Publish(request, metadata, { deadline: Date.now() + timeout }, (err, reply) =>
        resolve(err === null ? { status: 202, body: { ...reply } } : failed(err)))
    })
  }

  const deliver: Deliver = async ({ input, users, keys }) => {
    const recipients = users.filter((user) => user !== null)
    const channel = keys === null ? { key: '', keys: [] } : 'key' in input && input.key !== undefined ? { key: input.key, keys: [] } : { key: '', keys }
    const request = { stream: input.stream, users: recipients, dataJson: JSON.stringify(input.data), idempotencyKey: '', ref: 0, ...channel }
    const answer = await stream.send(request) ?? await unary(request)
    return sentFrom(answer, keys ?? users)
  }

  return {
    deliver,
    presence: noPresence('notify.v1 has no presence call: over gRPC, ask an edge\'s GET /presence'),
    async ready () {},
    async close () {
      stream.close()
      client.close()
    }
  }
}
