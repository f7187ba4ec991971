import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { Inbound } from '../inbound.js'
import { positiveInteger } from '../util.js'
import { BackendClient } from './backend-client.js'
import { callerSecretOption } from './caller-token.js'
import { ClientPublish } from './client-publish.js'
import { hookUrl } from '../declarations.js'
import { inProcessGate, openGate, remoteAuthorize, remoteGate, type PublishGate } from './gates.js'
import { RemoteKeys } from './remote-keys.js'
import { FleetUserRate } from './fleet-rate.js'
import { rateOption, UserBuckets, type Rate, type RateOptions } from './rate.js'
import type { RedisScriptClient } from '../redis-script.js'
import { declareMethods, InProcessRoutes, remoteTarget, Rpc, type RpcMethod } from './rpc.js'

export type { ClientPublishHook, ClientPublishPolicy, ClientPublishVerdict, PublishTarget } from '../inbound.js'
export { defineMethods, type RpcMethod } from './rpc.js'
export type * from '../typed-methods.js'
export type { RateOptions } from './rate.js'
export { remoteAuthorize, type AuthorizeGate } from './gates.js'
export { BackendClient, type BackendClientOptions } from './backend-client.js'
export * from './backend.js'

export interface NotifyUpstreamOptions {
  /** Client publishes one connection may make. @default { perSecond: 10, burst: 20 } */
  publishRate?: RateOptions
  /**
   * Client publishes one user may make across their connections: on this instance, or with
   * `scope: 'fleet'` on every instance sharing `rateStore`'s Redis (one script call per publish
   * the other limits let through). @default { perSecond: 20, burst: 40, scope: 'instance' }
   */
  userPublishRate?: RateOptions & { scope?: 'instance' | 'fleet' }
  /**
   * Where a fleet-wide `userPublishRate` is kept: a Redis client (the edge's own when registered
   * through `notifyEdge` with `redis`), keys under `keyPrefix`, answers awaited `timeout` ms before
   * the publish answers `UNAVAILABLE`.
   */
  rateStore?: { client: RedisScriptClient, keyPrefix?: string, timeout?: number }
  /** Largest `publish` frame, in bytes. @default 16384 */
  maxPublishBytes?: number
  /** How long a publish hook (a function or a backend) may take, in ms; then `TIMEOUT`. @default 2000 */
  hookTimeout?: number
  /** Methods clients may call, by name (SPEC section 13). @default none */
  methods?: Record<string, RpcMethod>
  /** How long a call may take, in ms; then `TIMEOUT` (the route is not called again). @default 10000 */
  rpcTimeout?: number
  /** Calls one connection may have in flight; more answer `RATE_LIMITED`. @default 8 */
  maxCallsInFlight?: number
  /**
   * Backends a dedicated edge calls (methods and hooks given as URLs): the secret they verify the
   * caller token with (`notifyBackend`), the token's lifetime in seconds, connections per backend.
   */
  backend?: { callerSecret: string, callerTokenTtl?: number, connections?: number }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Client publish and RPC for the streams routes (see `Inbound`). */
    notifyUpstream: Inbound
  }
}

function backendClient (app: FastifyInstance, backend: NotifyUpstreamOptions['backend'], needed: string | null): BackendClient | null {
  if (backend === undefined) {
    if (needed !== null) throw new InvalidOptionError(`${needed} is a URL: give backend.callerSecret for the backend to verify callers`)
    return null
  }
  const client = new BackendClient({
    callerSecret: callerSecretOption(backend?.callerSecret),
    callerTokenTtl: positiveInteger('backend.callerTokenTtl', backend.callerTokenTtl, 30),
    connections: positiveInteger('backend.connections', backend.connections, 64),
    maxAnswerBytes: 1024 * 1024
  })
  app.addHook('onClose', () => client.close(1000))
  return client
}

function fleetRate (opts: NotifyUpstreamOptions, rate: Rate): FleetUserRate | null {
  const scope = opts.userPublishRate?.scope ?? 'instance'
  if (scope !== 'instance' && scope !== 'fleet') throw new InvalidOptionError('userPublishRate.scope must be \'instance\' or \'fleet\'')
  if (scope === 'instance') return null
  const store = opts.rateStore
  if (typeof store?.client?.evalsha !== 'function') throw new InvalidOptionError('userPublishRate.scope \'fleet\' needs rateStore.client, an ioredis client (or the edge\'s redis option)')
  const keyPrefix = store.keyPrefix ?? 'notify:rate:publish:'
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0) throw new InvalidOptionError('rateStore.keyPrefix must be a non-empty string')
  return new FleetUserRate(store.client, keyPrefix, rate, positiveInteger('rateStore.timeout', store.timeout, 1000))
}

async function fastifyNotifyUpstream (app: FastifyInstance, opts: NotifyUpstreamOptions): Promise<void> {
  const hookTimeout = positiveInteger('hookTimeout', opts.hookTimeout, 2000)
  const methods = declareMethods(opts.methods)
  const streams = [...app.notify.streams.values()]
  const remoteHook = streams.find((s) => hookUrl(s.clientPublish) !== undefined)
  const remoteAuthorizer = streams.find((s) => s.remoteAuthorize !== null)
  const remoteMethod = methods.find((m) => m.origin !== null)
  const client = backendClient(app, opts.backend,
    remoteHook !== undefined
      ? `stream ${remoteHook.name}'s clientPublish`
      : remoteAuthorizer !== undefined ? `stream ${remoteAuthorizer.name}'s authorize` : remoteMethod !== undefined ? `rpc method ${remoteMethod.name}` : null)
  const userRate = rateOption('userPublishRate', opts.userPublishRate, { perSecond: 20, burst: 40 })
  const users = new UserBuckets(userRate)
  app.addHook('onClose', async () => users.close())
  const fleet = fleetRate(opts, userRate)

  const onHookError = (err: unknown): void => app.log.warn({ err }, 'notify publish hook failed: refusing the publish')
  const gates = new Map<string, PublishGate>()
  for (const stream of app.notify.streams.values()) {
    const policy = stream.clientPublish
    if (policy === undefined) continue
    gates.set(stream.name, policy === true
      ? openGate
      : typeof policy === 'function' ? inProcessGate(policy, hookTimeout, onHookError) : remoteGate(client!, hookUrl(policy)!, hookTimeout, onHookError))
  }
  const onAuthorizeError = (err: unknown): void => app.log.warn({ err }, 'notify channel authorize backend failed: refusing the key')
  const remoteKeys = new RemoteKeys(new Map(streams.filter((s) => s.remoteAuthorize !== null).map((s) => [s.name, {
    gate: remoteAuthorize(client!, s.remoteAuthorize!.url, s.authorizeTimeout, onAuthorizeError),
    cacheTtl: s.remoteAuthorize!.cacheTtl
  }])))
  const authorizeKey: Inbound['authorizeKey'] = (caller, target) => remoteKeys.allowed(caller, caller.principal, target)
  const clientPublish = new ClientPublish(app, gates, authorizeKey, {
    rate: rateOption('publishRate', opts.publishRate, { perSecond: 10, burst: 20 }),
    users,
    fleet,
    maxBytes: positiveInteger('maxPublishBytes', opts.maxPublishBytes, 16384)
  })

  const local = new InProcessRoutes(app)
  if (methods.some((m) => m.origin === null)) {
    if (!app.hasRequestDecorator('notifyPrincipal')) app.decorateRequest('notifyPrincipal', null)
    // A callback hook, not an async one: every request of the app runs it, and an async hook costs a promise each.
    app.addHook('onRequest', (request: FastifyRequest, _reply, done) => {
      local.identify(request)
      done()
    })
  }
  const rpc = new Rpc(new Map(methods.map((m) => [m.name, {
    method: m.method,
    path: m.path,
    anonymous: m.anonymous,
    target: m.origin === null ? local.target : remoteTarget(client!, m.origin)
  }])), {
    timeout: positiveInteger('rpcTimeout', opts.rpcTimeout, 10_000),
    maxInFlight: positiveInteger('maxCallsInFlight', opts.maxCallsInFlight, 8)
  }, app)

  app.decorate('notifyUpstream', {
    publish: (caller, frame) => clientPublish.publish(caller, frame),
    authorizeKey,
    rpc: (caller, frame) => rpc.call(caller, frame)
  } satisfies Inbound)
}

export const notifyUpstream = fp(fastifyNotifyUpstream, {
  fastify: '5.x',
  name: 'notify-edge-upstream',
  dependencies: ['notify-edge-notify', 'notify-edge-idempotency']
})
export default notifyUpstream
