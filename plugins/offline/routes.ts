// `POST` and `DELETE /push/subscriptions`: a user registers or removes a browser's push
// subscription, authenticated by the same JWT check as `POST /ws/ticket`.
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { InvalidOptionError, PushStoreUnavailableError, UnauthorizedError } from '../errors.js'
import { bearerToken, principalFromJwt } from '../principal.js'
import { errorSchema } from '../schemas.js'
import type { PushSubscriptionStore } from './store.js'
import { checkEndpoint, checkSubscription } from './subscription.js'

export interface PushRoutesOptions {
  path: string
  store: PushSubscriptionStore
  max: number
  allowed: (url: URL) => boolean
}

async function user (app: FastifyInstance, request: FastifyRequest): Promise<string> {
  const token = bearerToken(request.headers.authorization)
  if (token === null) throw new UnauthorizedError('missing bearer token')
  return (await principalFromJwt(app, token)).user as string
}

async function reach<T> (work: Promise<T>): Promise<T> {
  try {
    return await work
  } catch (err) {
    throw new PushStoreUnavailableError((err as Error).message)
  }
}

const subscriptionBody = {
  type: 'object',
  description: "The browser's PushSubscription.toJSON()",
  required: ['endpoint', 'keys'],
  properties: {
    endpoint: { type: 'string', format: 'uri' },
    expirationTime: { type: ['number', 'null'] },
    keys: { type: 'object', properties: { p256dh: { type: 'string' }, auth: { type: 'string' } } }
  }
}

export async function pushSubscriptionRoutes (app: FastifyInstance, opts: PushRoutesOptions): Promise<void> {
  const { path, store, max, allowed } = opts
  if (typeof path !== 'string' || !path.startsWith('/')) throw new InvalidOptionError('push.path must start with /')
  // The request schemas document; the handlers check, with coded errors.
  const documentOnly = { validatorCompiler: () => (value: unknown) => ({ value }) }
  const common = { tags: ['notify-edge'], security: [{ notifyBearer: [] }], body: subscriptionBody }

  app.post(path, {
    bodyLimit: 4096,
    ...documentOnly,
    schema: {
      ...common,
      summary: 'Register a Web Push subscription for offline notifications',
      response: {
        201: { type: 'object', required: ['subscriptions'], properties: { subscriptions: { type: 'integer', description: 'how many the user holds now' } } },
        400: errorSchema,
        401: errorSchema,
        503: errorSchema
      }
    } as FastifySchema
  }, async (request, reply) => {
    const owner = await user(app, request)
    const subscription = checkSubscription(request.body, allowed)
    return reply.code(201).send({ subscriptions: await reach(store.add(owner, subscription, max)) })
  })

  app.delete(path, {
    bodyLimit: 4096,
    ...documentOnly,
    schema: {
      ...common,
      summary: 'Remove a Web Push subscription',
      response: { 204: { type: 'null' }, 400: errorSchema, 401: errorSchema, 503: errorSchema }
    } as FastifySchema
  }, async (request, reply) => {
    const owner = await user(app, request)
    await reach(store.remove(owner, checkEndpoint(request.body)))
    return reply.code(204).send()
  })
}
