// mqemitter-redis's wire format, written here so that the bus can PUBLISH itself and keep
// Redis's reply (how many connections subscribe to the channel), which mqemitter-redis's emit()
// throws away. A packet is msgpack `{ id, msg }`; receivers decode it with msgpack-lite and drop
// an `id` they have seen in the last minute, so `id` must be unique per message.

export type PacketValue = string | number | boolean | null | undefined | { [key: string]: PacketValue }
type Value = PacketValue

function header (bytes: number[], small: number, size: number, codes: [number, number, number]): void {
  if (size < 16 && small === 0x80) bytes.push(small | size)
  else if (size < 32 && small === 0xa0) bytes.push(small | size)
  else if (size < 0x100 && codes[0] !== 0) bytes.push(codes[0], size)
  else if (size < 0x10000) bytes.push(codes[1], size >>> 8, size & 0xff)
  else bytes.push(codes[2], size >>> 24, (size >>> 16) & 0xff, (size >>> 8) & 0xff, size & 0xff)
}

function encodeInto (chunks: Buffer[], value: Value): void {
  if (typeof value === 'string') {
    const text = Buffer.from(value, 'utf8')
    const head: number[] = []
    header(head, 0xa0, text.length, [0xd9, 0xda, 0xdb])
    chunks.push(Buffer.from(head), text)
  } else if (typeof value === 'number') {
    const number = Buffer.allocUnsafe(9)
    number[0] = 0xcb
    number.writeDoubleBE(value, 1)
    chunks.push(number)
  } else if (typeof value === 'boolean') {
    chunks.push(Buffer.of(value ? 0xc3 : 0xc2))
  } else if (value === null || value === undefined) {
    chunks.push(Buffer.of(0xc0))
  } else {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined)
    const head: number[] = []
    header(head, 0x80, entries.length, [0, 0xde, 0xdf])
    chunks.push(Buffer.from(head))
    for (const [key, v] of entries) {
      encodeInto(chunks, key)
      encodeInto(chunks, v)
    }
  }
}

/** The msgpack encoding of `value` (strings, numbers, booleans, null and plain objects of them). */
export function encodePacket (value: { [key: string]: Value }): Buffer {
  const chunks: Buffer[] = []
  encodeInto(chunks, value)
  return Buffer.concat(chunks)
}
