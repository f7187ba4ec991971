// Type tests, compiled by test/consumer.test.ts against the installed package: what must compile
// does, and each `@ts-expect-error` line must fail to (tsc reports an unused one).
import Fastify from 'fastify'
import { Type } from 'typebox'
import { defineStreams, notifyEdge, type AnyStreams, type Publisher } from 'fastify-notify-edge'
import { connect, type NotifyMessage } from 'fastify-notify-edge/client'

export const streams = defineStreams([
  {
    name: 'order',
    kind: 'private',
    schema: Type.Object({ orderId: Type.String(), status: Type.Union([Type.Literal('placed'), Type.Literal('paid')]) }),
    history: { size: 100, ttl: 3600 }
  },
  { name: 'promotional', kind: 'public', schema: Type.Object({ text: Type.String() }) },
  { name: 'plain', kind: 'public', schema: { type: 'object', required: ['anything'] } },
  { name: 'vip', kind: 'public', authorize: (principal) => principal.user?.startsWith('vip-') === true },
  // A channel's hook is typed from its kind: it gets the key.
  { name: 'room', kind: 'channel', schema: Type.Object({ text: Type.String() }), members: true, authorize: (principal, { key }) => principal.user !== null && key !== 'staff' },
  { name: 'ticker', kind: 'channel', openAccess: true, anonymous: true }
])

// Once per app, and `app.notify` is typed everywhere.
declare module 'fastify-notify-edge' {
  interface NotifyEdgeStreams { streams: typeof streams }
}

const app = Fastify()
await app.register(notifyEdge, { jwt: { secret: 'x'.repeat(32) }, streams })

const toUser = await app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: '42', status: 'paid' } })
const id: string = toUser.id
const online: boolean | undefined = toUser.online
const toUsers = await app.notify.publish({ stream: 'order', users: ['alice', 'bob'], data: { orderId: '42', status: 'placed' } })
const ids: string[] = toUsers.ids
const offline: string[] | undefined = toUsers.offline
// @ts-expect-error a publish to several users has ids, not an id
console.log(toUsers.id)
const toAll = await app.notify.publish({ stream: 'promotional', data: { text: '10% off' } })
const publicId: string = toAll.id
// @ts-expect-error a public stream's result says nothing of presence
console.log(toAll.online)
// A plain JSON schema validates at run time and types nothing: any data compiles.
await app.notify.publish({ stream: 'plain', data: 42 })
await app.notify.publish({ stream: 'vip', data: { whatever: true } })

// @ts-expect-error wrong data: orderId is a string
await app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: 42, status: 'paid' } })
// @ts-expect-error wrong data: not one of the statuses
await app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: '42', status: 'lost' } })
// @ts-expect-error wrong data: status is missing
await app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: '42' } })
// @ts-expect-error data is required
await app.notify.publish({ stream: 'promotional' })
// @ts-expect-error a private stream needs user or users
await app.notify.publish({ stream: 'order', data: { orderId: '42', status: 'paid' } })
// @ts-expect-error not both user and users
await app.notify.publish({ stream: 'order', user: 'alice', users: ['bob'], data: { orderId: '42', status: 'paid' } })
// @ts-expect-error a public stream takes no user
await app.notify.publish({ stream: 'promotional', user: 'alice', data: { text: 'hi' } })
// @ts-expect-error a public stream takes no users
await app.notify.publish({ stream: 'promotional', users: ['alice'], data: { text: 'hi' } })
// @ts-expect-error an unknown stream
await app.notify.publish({ stream: 'ordr', user: 'alice', data: { orderId: '42', status: 'paid' } })

// A channel takes a key, or keys in one call.
const toKey = await app.notify.publish({ stream: 'room', key: 'lobby', data: { text: 'hi' } })
const keyId: string = toKey.id
const toKeys = await app.notify.publish({ stream: 'room', keys: ['lobby', 'kitchen'], data: { text: 'hi' } })
const keyIds: string[] = toKeys.ids
await app.notify.publish({ stream: 'ticker', key: 'ACME', data: 42 })
// @ts-expect-error a channel needs a key
await app.notify.publish({ stream: 'room', data: { text: 'hi' } })
// @ts-expect-error a channel's data is typed too
await app.notify.publish({ stream: 'room', key: 'lobby', data: { text: 1 } })
// @ts-expect-error a channel takes keys, not users
await app.notify.publish({ stream: 'room', user: 'alice', data: { text: 'hi' } })
// @ts-expect-error not key and keys at once
await app.notify.publish({ stream: 'room', key: 'a', keys: ['b'], data: { text: 'hi' } })
// @ts-expect-error a public stream takes no key
await app.notify.publish({ stream: 'promotional', key: 'lobby', data: { text: 'hi' } })
// @ts-expect-error a private stream takes no keys
await app.notify.publish({ stream: 'order', user: 'alice', keys: ['x'], data: { orderId: '42', status: 'paid' } })

// A declaration narrows any publisher by assignment (e.g. in a module that must not see the registry).
const typed: Publisher<typeof streams> = app.notify
// @ts-expect-error the narrowed publisher knows the streams too
await typed.publish({ stream: 'nope', data: {} })
// Without a declaration, any stream and any data compile (checked at run time).
declare const untyped: Publisher<AnyStreams>
const anyResult = await untyped.publish({ stream: 'whatever', user: 'alice', data: new Date() })
const anyId: string = anyResult.id
// @ts-expect-error still not user and users at once
await untyped.publish({ stream: 'whatever', user: 'alice', users: ['bob'], data: 1 })

// The client, typed from the same declaration.
const client = connect<typeof streams>({ url: 'wss://edge.example.com/ws', getTicket: async () => 'ticket' })
client.subscribe('order', (message) => {
  const status: 'placed' | 'paid' = message.data.status
  const orderId: string = message.data.orderId
  console.log(status, orderId, message.id)
})
client.subscribe('promotional', ({ data }) => console.log(data.text.toUpperCase()))
client.subscribe('plain', (message: NotifyMessage) => console.log(message.data))
// @ts-expect-error a misspelt stream
client.subscribe('ordr', () => {})
// @ts-expect-error data is typed per stream
client.subscribe('promotional', ({ data }) => console.log(data.orderId))
client.subscribe('room:lobby', ({ data, stream }) => console.log(data.text.toUpperCase(), stream))
// @ts-expect-error a channel is subscribed with a key
client.subscribe('room', () => {})
// @ts-expect-error only a channel takes a key
client.subscribe('promotional:x', () => {})
// Untyped, the client takes any stream.
connect({ url: '/ws' }).subscribe('anything', ({ data }) => console.log(data))

export { id, online, ids, offline, publicId, anyId, keyId, keyIds }
