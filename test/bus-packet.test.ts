import { createRequire } from 'node:module'
import t from 'tap'
import { decodePacket, encodeBusPacket, encodePacket, readBusPacket } from '../plugins/bus/packet.js'

// The receiving side is mqemitter-redis, which decodes with msgpack-lite: every encoding the bus
// writes must come back as it went in.
const msgpack = createRequire(import.meta.url)('msgpack-lite') as { decode (buffer: Buffer): unknown, encode (value: unknown): Buffer }

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

// The lean emitter decodes itself, what this encoder and msgpack-lite (mqemitter-redis's emit) write.
t.test('decodePacket reads what encodePacket and msgpack-lite write', async (t) => {
  const values: Array<[string, unknown]> = [
    ['a message as the bus sends it', { id: 'notify/p/x a 1-0', msg: { topic: 'notify/p/x', id: '1-0', frame: '{"event":"message"}', prev: '' } }],
    ['strings of each length class, unicode', { a: 'x'.repeat(31), b: 'é'.repeat(40), c: 'x'.repeat(255), d: 'x'.repeat(256), e: 'x'.repeat(65_536), u: '漢字 👋' }],
    ['integers of each width', { a: 0, b: 127, c: 128, d: 255, e: 256, f: 65_535, g: 65_536, h: 2 ** 32, i: -1, j: -32, k: -33, l: -128, m: -129, n: -32_768, o: -32_769, p: -(2 ** 31) - 1 }],
    ['floats, booleans and null', { f: -1.5, g: 1e300, yes: true, no: false, none: null }],
    ['maps of 16 and more', Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i % 3]))],
    ['arrays of each size class', { a: [1, 'two', null], b: Array.from({ length: 20 }, (_, i) => i), c: Array.from({ length: 70_000 }, () => 0) }]
  ]
  for (const [what, value] of values) {
    t.same(decodePacket(msgpack.encode(value)), value, `${what}, from msgpack-lite`)
    if (!JSON.stringify(value).includes('[')) t.same(decodePacket(encodePacket(value as never)), value, `${what}, from encodePacket`)
  }
  t.same(decodePacket(msgpack.encode(Buffer.from('bin'))), Buffer.from('bin'), 'binary (bin 8)')
  t.same(decodePacket(Buffer.concat([Buffer.of(0xc5, 0x00, 0x02), Buffer.from('ab')])), Buffer.from('ab'), 'bin 16')
  t.same(decodePacket(Buffer.concat([Buffer.of(0xc6, 0, 0, 0, 0x01), Buffer.from('a')])), Buffer.from('a'), 'bin 32')
  t.equal(decodePacket(Buffer.of(0xca, 0x3f, 0xc0, 0, 0)), 1.5, 'float 32')
  t.equal(decodePacket(Buffer.of(0xcf, 0, 0, 0, 0, 0, 0, 0, 7)), 7, 'uint 64')
  t.equal(decodePacket(Buffer.of(0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf9)), -7, 'int 64')
})

t.test('decodePacket refuses what is not one whole packet', async (t) => {
  t.throws(() => decodePacket(Buffer.alloc(0)), RangeError, 'empty')
  t.throws(() => decodePacket(Buffer.of(0x82, 0xa1, 0x61)), RangeError, 'a map cut short')
  t.throws(() => decodePacket(Buffer.of(0xa5, 0x61)), RangeError, 'a string cut short')
  t.throws(() => decodePacket(Buffer.of(0xcb, 0x00)), RangeError, 'a float cut short')
  t.throws(() => decodePacket(Buffer.of(0xc0, 0xc0)), RangeError, 'bytes after the packet')
  t.throws(() => decodePacket(Buffer.of(0xd4, 0x01, 0x02)), TypeError, 'ext types')
  t.throws(() => decodePacket(Buffer.of(0xc1)), TypeError, 'the never-used code')
})

t.test('encodeBusPacket writes the bytes encodePacket writes for a bus message', async (t) => {
  const messages = [
    { topic: 'notify/u/order/YWxpY2U', id: '1732900000000-0', frame: '{"event":"message","data":{"é":"ü"}}', prev: '' },
    { topic: 'notify/p/system', id: '1-0', frame: '{"event":"message"}' },
    { topic: 't'.repeat(40), id: 'i'.repeat(300), frame: 'f'.repeat(70_000), prev: 'p'.repeat(31) }
  ]
  for (const message of messages) {
    const id = `${message.topic} 5f0c 0b1e ${message.id}`
    t.same(encodeBusPacket(id, message), encodePacket({ id, msg: message }), message.topic.slice(0, 20))
  }
})

t.test('readBusPacket reads back every message encodeBusPacket writes', async (t) => {
  const messages = [
    { topic: 'notify/u/order/YWxpY2U', id: '1732900000000-0', frame: '{"event":"message","data":{"é":"漢字 👋"}}', prev: '' },
    { topic: 'notify/p/system', id: '1-0', frame: '{"event":"message"}' },
    ...[31, 32, 255, 256, 65_535, 65_536].map((size) => ({ topic: 't'.repeat(size % 40), id: 'i'.repeat(size % 300), frame: 'f'.repeat(size), prev: 'p'.repeat(size % 33) }))
  ]
  for (const message of messages) {
    const packet = encodeBusPacket(`${message.topic} 5f0c ${message.id}`, message)
    t.same(readBusPacket(packet), message, `${message.frame.length} bytes of frame`)
    t.same(readBusPacket(packet), (decodePacket(packet) as { msg: unknown }).msg, 'as the general reader reads it')
  }
})

t.test('readBusPacket leaves every other layout to decodePacket (null), and never throws', async (t) => {
  const message = { topic: 'notify/p/system', id: '1-0', frame: '{"event":"message"}', prev: '0-0' }
  const packet = encodeBusPacket('p 1', message)
  const others: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['fields in another order', encodePacket({ id: 'p 1', msg: { id: '1-0', topic: message.topic, frame: message.frame } })],
    ['a field more (msgpack-lite)', msgpack.encode({ id: 'p 1', msg: { ...message, extra: 1 } })],
    ['a number where a string belongs', encodePacket({ id: 'p 1', msg: { topic: message.topic, id: 1, frame: message.frame } })],
    ['a byte after the packet', Buffer.concat([packet, Buffer.of(0xc0)])]
  ]
  for (let end = 0; end < packet.length; end++) others.push([`cut at ${end} bytes`, packet.subarray(0, end)])
  for (const [what, bytes] of others) t.equal(readBusPacket(bytes), null, what)
})
