// mqemitter-redis's wire format, written here so that the bus can PUBLISH itself and keep
// Redis's reply (how many connections subscribe to the channel), which mqemitter-redis's emit()
// throws away. A packet is msgpack `{ id, msg }`; receivers decode it with msgpack-lite and drop
// an `id` they have seen in the last minute, so `id` must be unique per message.
// Encoded in two passes, sizes then bytes, into one buffer: it runs once per publish.

export type PacketValue = string | number | boolean | null | undefined | { [key: string]: PacketValue }
type Value = PacketValue

/** Bytes of a msgpack str/map header for `size` (fixstr/fixmap below 32/16; maps have no 8-bit form). */
function headerBytes (size: number, fixLimit: number, has8: boolean): number {
  if (size < fixLimit) return 1
  if (size < 0x100 && has8) return 2
  return size < 0x10000 ? 3 : 5
}

function writeHeader (out: Buffer, at: number, size: number, fix: number, fixLimit: number, codes: readonly [number, number, number]): number {
  if (size < fixLimit) {
    out[at] = fix | size
    return at + 1
  }
  if (size < 0x100 && codes[0] !== 0) {
    out[at] = codes[0]
    out[at + 1] = size
    return at + 2
  }
  if (size < 0x10000) {
    out[at] = codes[1]
    out.writeUInt16BE(size, at + 1)
    return at + 3
  }
  out[at] = codes[2]
  out.writeUInt32BE(size, at + 1)
  return at + 5
}

const STR = [0xd9, 0xda, 0xdb] as const
const MAP = [0, 0xde, 0xdf] as const

function defined (value: { [key: string]: Value }): string[] {
  return Object.keys(value).filter((key) => value[key] !== undefined)
}

function sizeOf (value: Value): number {
  if (typeof value === 'string') {
    const bytes = Buffer.byteLength(value)
    return headerBytes(bytes, 32, true) + bytes
  }
  if (typeof value === 'number') return 9
  if (typeof value !== 'object' || value === null) return 1
  const keys = defined(value)
  let size = headerBytes(keys.length, 16, false)
  for (const key of keys) size += sizeOf(key) + sizeOf(value[key])
  return size
}

function writeValue (out: Buffer, at: number, value: Value): number {
  if (typeof value === 'string') {
    const bytes = Buffer.byteLength(value)
    at = writeHeader(out, at, bytes, 0xa0, 32, STR)
    return at + out.write(value, at)
  }
  if (typeof value === 'number') {
    out[at] = 0xcb
    out.writeDoubleBE(value, at + 1)
    return at + 9
  }
  if (typeof value === 'boolean') {
    out[at] = value ? 0xc3 : 0xc2
    return at + 1
  }
  if (value === null || value === undefined) {
    out[at] = 0xc0
    return at + 1
  }
  const keys = defined(value)
  at = writeHeader(out, at, keys.length, 0x80, 16, MAP)
  for (const key of keys) at = writeValue(out, writeValue(out, at, key), value[key])
  return at
}

/** The msgpack encoding of `value` (strings, numbers, booleans, null and plain objects of them). */
export function encodePacket (value: { [key: string]: Value }): Buffer {
  const out = Buffer.allocUnsafe(sizeOf(value))
  writeValue(out, 0, value)
  return out
}
