import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { loadSync } from '@grpc/proto-loader'
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor } from '@grpc/grpc-js'

// Where the shipped proto file is, and the service it defines: one leaf for the gRPC ingress and
// for TypeScript producers (the publisher plugin) that call it.

/** Absolute path of `proto/notify/v1/notify.proto`, from the sources or from `dist/`. */
export const NOTIFY_PROTO_PATH: string = ['../../proto/notify/v1/notify.proto', '../../../proto/notify/v1/notify.proto']
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((path) => existsSync(path)) ?? fileURLToPath(new URL('../../../proto/notify/v1/notify.proto', import.meta.url))

/** `notify.v1.PublishRequest` as @grpc/proto-loader presents it (camelCase, defaults filled in). */
export interface GrpcPublishRequest {
  stream: string
  users: string[]
  dataJson: string
  idempotencyKey: string
}

/** `notify.v1.PublishReply`. */
export interface GrpcPublishReply {
  ids: string[]
  offline: string[]
}

/** The `notify.v1.Notifications` service, loaded from the shipped proto file (clients are built from it too). */
export function notificationsService (): ServiceClientConstructor {
  const definition = loadSync(NOTIFY_PROTO_PATH, { keepCase: false, defaults: true, arrays: true })
  const v1 = (loadPackageDefinition(definition).notify as GrpcObject).v1 as GrpcObject
  return v1.Notifications as ServiceClientConstructor
}
