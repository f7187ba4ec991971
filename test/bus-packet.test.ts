import { createRequire } from 'node:module'
import t from 'tap'
import { encodePacket } from '../plugins/bus/packet.js'

// The receiving side is mqemitter-redis, which decodes with msgpack-lite: every encoding the bus
// writes must come back as it went in.
const msgpack = createRequire(import.meta.url)('msgpack-lite') as { decode (buffer: Buffer): unknown }

t.test('msgpack-lite decodes every packet the bus encodes as it went in', async (t) => {
  const values: Array<[string, Record<string, unknown>]> = [
    ['a message as the bus sends it', { id: 'notify/u/order/YWxpY2U 1-0', msg: { topic: 'notify/u/order/YWxpY2U', id: '1-0', frame: '{"event":"message"}', prev: '' } }],
    ['unicode', { text: 'é 漢字 👋' }],
    ['strings of each length class', { a: 'x'.repeat(31), b: 'x'.repeat(32), c: 'x'.repeat(255), d: 'x'.repeat(256), e: 'x'.repeat(65_535), f: 'x'.repeat(65_536) }],
    ['numbers, booleans and null', { n: 42, f: -1.5, big: 2 ** 40, yes: true, no: false, none: null }],
    ['a map of more than 15 entries', Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i]))],
    ['nested objects', { a: { b: { c: 'd' } } }]
  ]
  for (const [what, value] of values) t.same(msgpack.decode(encodePacket(value as never)), value, what)
  t.same(msgpack.decode(encodePacket({ kept: 'yes', dropped: undefined })), { kept: 'yes' }, 'undefined fields are left out')
})
