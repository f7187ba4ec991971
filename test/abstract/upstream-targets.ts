// One suite for the two ways an edge serves what clients send (SPEC section 13): RPC methods and
// publish hooks in the app's own process, and the same routes and hooks in a backend that a
// dedicated edge reaches over HTTP. Each test file builds an edge both ways and runs this.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { ClientPublishHook } from '../../plugins/index.js'
import type { Client, Frame } from '../helpers.js'

/** The routes both builds serve: the caller is `request.notifyPrincipal`. */
export async function orderRoutes (app: FastifyInstance): Promise<void> {
  const orders = new Map<string, string[]>()
  app.post('/orders', {
    schema: { body: { type: 'object', required: ['item'], additionalProperties: false, properties: { item: { type: 'string', maxLength: 64 } } } }
  }, async (request, reply) => {
    const user = request.notifyPrincipal?.user
    if (user == null) return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'who are you?' })
    const orderId = `${user}-${(orders.get(user)?.length ?? 0) + 1}`
    orders.set(user, [...orders.get(user) ?? [], orderId])
    return reply.code(201).send({ orderId })
  })
  app.get('/orders', async (request) => {
    const { limit } = request.query as { limit?: string }
    const mine = orders.get(request.notifyPrincipal?.user ?? '') ?? []
    return { orders: limit === undefined ? mine : mine.slice(0, Number(limit)) }
  })
  app.post('/orders/:orderId/cancel', async (request, reply) => {
    const { orderId } = request.params as { orderId: string }
    if (!(orders.get(request.notifyPrincipal?.user ?? '') ?? []).includes(orderId)) return reply.code(404).send({ message: `no order ${orderId}` })
    return { cancelled: orderId, reason: (request.body as { reason?: string } | undefined)?.reason ?? null }
  })
  app.get('/whoami', async (request) => ({ user: request.notifyPrincipal?.user ?? null }))
  app.get('/text', async (_request, reply) => reply.type('text/plain').send('plain words'))
  app.get('/broken', async () => { throw new Error('kaput') })
  app.post('/slow', async () => {
    await sleep(1500)
    return { late: true }
  })
}

export const METHODS = {
  'orders.place': { method: 'POST', url: '/orders' },
  'orders.list': { method: 'GET', url: '/orders' },
  'orders.cancel': { method: 'POST', url: '/orders/:orderId/cancel' },
  whoami: { method: 'GET', url: '/whoami', anonymous: true },
  text: { method: 'GET', url: '/text' },
  broken: { method: 'GET', url: '/broken' },
  slow: { method: 'POST', url: '/slow' }
} as const

/** A publish hook both builds run: in process, or served by the backend's `notifyBackend.publishHook`. */
export const chatHook: ClientPublishHook = async (principal, target, data) => {
  const text = (data as { text?: string }).text
  if (text === 'bad word') return { allow: false, reason: 'profanity', message: 'mind your language' }
  if (text === 'slow') await sleep(1500)
  return { allow: true, data: { text, checkedFor: principal.user, stream: target.stream } }
}

export interface Built {
  /** A connected, authenticated socket for `user`. */
  connect (user: string): Promise<Client>
  /** An anonymous socket. */
  anonymous (): Promise<Client>
}

export interface UpstreamSuite {
  /** An edge whose methods are `METHODS` (timeout 500 ms, 2 calls in flight), and a stream `chat` guarded by `chatHook` (timeout 500 ms). */
  builder: (t: Test) => Promise<Built>
  test: (name: string, fn: (t: Test) => Promise<void>) => void
}

let serial = 0
export async function call (client: Client, method: string, data?: unknown): Promise<Frame> {
  const id = `c${++serial}`
  client.send({ event: 'rpc', method, data, id })
  return client.next((f) => f.id === id && (f.event === 'result' || f.event === 'error'), 5000)
}

export function upstreamSuite ({ builder, test }: UpstreamSuite): void {
  test('a method answers with its route\'s JSON, for the calling user', async (t) => {
    const edge = await builder(t)
    const alice = await edge.connect('alice')
    const placed = await call(alice, 'orders.place', { item: 'tea' })
    t.same([placed.event, placed.data], ['result', { orderId: 'alice-1' }])
    await call(alice, 'orders.place', { item: 'cake' })
    t.same((await call(alice, 'orders.list', { limit: 1 })).data, { orders: ['alice-1'] }, 'GET data is the query')
    const bob = await edge.connect('bob')
    t.same((await call(bob, 'orders.list')).data, { orders: [] }, 'each user sees their own')
    const cancelled = await call(alice, 'orders.cancel', { orderId: 'alice-2', reason: 'changed my mind' })
    t.same(cancelled.data, { cancelled: 'alice-2', reason: 'changed my mind' }, ':params come from data, the rest is the body')
    t.same((await call(alice, 'text')).data, 'plain words')
  })

  test('a route\'s 4xx and 5xx are RPC_FAILED with its status and message', async (t) => {
    const edge = await builder(t)
    const alice = await edge.connect('alice')
    const invalid = await call(alice, 'orders.place', { nothing: 'here' })
    t.same([invalid.code, invalid.status], ['RPC_FAILED', 400], 'the route\'s schema applies')
    t.match(invalid.message, /body/)
    const missing = await call(alice, 'orders.cancel', { orderId: 'nope' })
    t.same([missing.code, missing.status, missing.message], ['RPC_FAILED', 404, 'no order nope'])
    const broken = await call(alice, 'broken')
    t.same([broken.code, broken.status], ['RPC_FAILED', 500])
  })

  test('unknown methods, bad data, anonymous callers and slow routes get their codes', async (t) => {
    const edge = await builder(t)
    const alice = await edge.connect('alice')
    t.equal((await call(alice, 'orders.nope')).code, 'UNKNOWN_METHOD')
    t.equal((await call(alice, 'orders.list', [1, 2])).code, 'BAD_REQUEST')
    t.equal((await call(alice, 'orders.list', { deep: { x: 1 } })).code, 'BAD_REQUEST')
    t.equal((await call(alice, 'orders.cancel', { reason: 'no id' })).code, 'BAD_REQUEST')
    const anonymous = await edge.anonymous()
    t.equal((await call(anonymous, 'orders.place', { item: 'tea' })).code, 'FORBIDDEN')
    t.same((await call(anonymous, 'whoami')).data, { user: null }, 'an anonymous method sees no user')
    const started = Date.now()
    t.equal((await call(alice, 'slow')).code, 'TIMEOUT')
    t.ok(Date.now() - started < 1400, 'within the timeout')
  })

  test('calls in flight are limited per connection, and a slow call holds nothing else', async (t) => {
    const edge = await builder(t)
    const alice = await edge.connect('alice')
    const slow = [call(alice, 'slow'), call(alice, 'slow')]
    t.equal((await call(alice, 'whoami')).code, 'RATE_LIMITED')
    const bob = await edge.connect('bob')
    const started = Date.now()
    t.same((await call(bob, 'whoami')).data, { user: 'bob' }, 'another socket is served meanwhile')
    t.ok(Date.now() - started < 400)
    alice.send({ event: 'ping', id: 'p' })
    await alice.next((f) => f.event === 'pong')
    t.same((await Promise.all(slow)).map((f) => f.code), ['TIMEOUT', 'TIMEOUT'])
    t.same((await call(alice, 'whoami')).data, { user: 'alice' }, 'free again')
  })

  test('the publish hook allows, replaces, refuses with a reason, and times out', async (t) => {
    const edge = await builder(t)
    const alice = await edge.connect('alice')
    await alice.subscribe('chat')
    alice.send({ event: 'publish', stream: 'chat', data: { text: 'hello' }, id: 'a' })
    t.equal((await alice.next((f) => f.id === 'a')).event, 'published')
    const message = await alice.event('message')
    t.same([message.from, message.data], ['alice', { text: 'hello', checkedFor: 'alice', stream: 'chat' }])
    alice.send({ event: 'publish', stream: 'chat', data: { text: 'bad word' }, id: 'b' })
    const refused = await alice.next((f) => f.id === 'b')
    t.same([refused.code, refused.reason, refused.message], ['FORBIDDEN', 'profanity', 'mind your language'])
    alice.send({ event: 'publish', stream: 'chat', data: { text: 'slow' }, id: 'c' })
    t.equal((await alice.next((f) => f.id === 'c', 5000)).code, 'TIMEOUT')
    t.same(alice.messages(), [], 'nothing refused was delivered')
  })
}
