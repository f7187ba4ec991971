import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { GrpcObject, ServiceClientConstructor, status as GrpcStatus } from '@grpc/grpc-js'

// Where the shipped proto file is, and the service it defines: one leaf for the gRPC ingress and
// for TypeScript producers (the publisher plugin) that call it.

const PROTO = 'proto/notify/v1/notify.proto'

/** The nearest `proto/notify/v1/notify.proto` above this module: the sources, `dist/`, or a build cache. */
function locate (): string {
  let dir = new URL('.', import.meta.url)
  for (let up = 0; up < 6; up++, dir = new URL('..', dir)) {
    const path = fileURLToPath(new URL(PROTO, dir))
    if (existsSync(path)) return path
  }
  return fileURLToPath(new URL(`../../../${PROTO}`, import.meta.url))
}

/** Absolute path of the shipped `proto/notify/v1/notify.proto`. */
export const NOTIFY_PROTO_PATH: string = locate()

/** `notify.v1.PublishRequest` as @grpc/proto-loader presents it (camelCase, defaults filled in). */
export interface GrpcPublishRequest {
  stream: string
  users: string[]
  dataJson: string
  idempotencyKey: string
  /** A channel's key (SPEC section 12); empty otherwise. */
  key: string
  /** A channel's keys; empty otherwise. */
  keys: string[]
  /** PublishStream: the caller's reference, echoed in the reply (0 when not given). */
  ref: number
}

/** `notify.v1.PublishReply`. */
export interface GrpcPublishReply {
  ids: string[]
  offline: string[]
}

/** `notify.v1.PublishStreamReply`: `status` 0 with the ids, or the refusal of a unary Publish. */
export interface GrpcPublishStreamReply extends GrpcPublishReply {
  ref: number
  status: number
  errorCode: string
  errorMessage: string
}

/**
 * The `notify.v1.Notifications` service, loaded from the shipped proto file (clients are built
 * from it too). @grpc/grpc-js and @grpc/proto-loader load on the first call, not at import.
 */
export async function notificationsService (): Promise<ServiceClientConstructor> {
  const [{ loadSync }, { loadPackageDefinition }] = await Promise.all([import('@grpc/proto-loader'), import('@grpc/grpc-js')])
  const definition = loadSync(NOTIFY_PROTO_PATH, { keepCase: false, defaults: true, arrays: true })
  const v1 = (loadPackageDefinition(definition).notify as GrpcObject).v1 as GrpcObject
  return v1.Notifications as ServiceClientConstructor
}

/**
 * The HTTP statuses of the coded errors as the gRPC codes SPEC section 9 names: the edge answers
 * with them, a publisher maps them back. `status` is @grpc/grpc-js's enum, passed in so that
 * importing this file loads nothing.
 */
export function grpcCodes (status: typeof GrpcStatus): Record<number, GrpcStatus> {
  return {
    400: status.INVALID_ARGUMENT,
    401: status.UNAUTHENTICATED,
    409: status.ABORTED,
    413: status.RESOURCE_EXHAUSTED,
    503: status.UNAVAILABLE
  }
}
