// Type tests of client publish and RPC (SPEC section 13), compiled by test/consumer.test.ts.
import { Type } from 'typebox'
import { defineMethods, defineStreams } from 'fastify-notify-edge'
import { connect } from 'fastify-notify-edge/client'

export const chatStreams = defineStreams([
  { name: 'chat', kind: 'public', clientPublish: true, schema: Type.Object({ text: Type.String() }) }
])

export const methods = defineMethods({
  'orders.place': { method: 'POST', url: '/orders', request: Type.Object({ item: Type.String() }), response: Type.Object({ orderId: Type.String() }) },
  'orders.list': { method: 'GET', url: '/orders' }
})

const client = connect<typeof chatStreams, typeof methods>({ url: 'ws://127.0.0.1:3000/ws', getTicket: async () => 'ticket' })
const placed = await client.rpc('orders.place', { item: 'tea' })
const orderId: string = placed.orderId
console.log(orderId)
// @ts-expect-error the request type comes from the declaration
await client.rpc('orders.place', { item: 5 })
// @ts-expect-error an undeclared method
await client.rpc('orders.nope')
const listed: unknown = await client.rpc('orders.list')
console.log(listed)
const published = await client.publish('chat', { text: 'hi' }, { idempotencyKey: 'k1' })
const messageId: string = published.id
console.log(messageId, published.replayed)
// @ts-expect-error the stream's schema types the data
await client.publish('chat', { text: 5 })
// @ts-expect-error an undeclared stream
await client.publish('news', {})
client.subscribe('chat', (message) => console.log(message.from ?? 'the server', message.data.text))
