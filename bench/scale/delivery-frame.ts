// The load generator reads every `message` frame of the scale scenario: 100,000 of them per
// broadcast. JSON.parse of the whole frame (and the utf8 string it needs first) was most of the
// clients' own JavaScript per delivery, on the cores the instances are measured on. A message
// frame is always `{"event":"message","stream":"<name>","id":"<ms>-<seq>","ts":<n>,…"data":{"seq":<n>,"t":<n>,…}}`
// (plugins/message.ts builds it, bench/lib/shared.ts `notification` its data), so the few fields
// the clients count are read in place. Anything else returns false: the caller parses it whole.

const HEAD = Buffer.from('{"event":"message","stream":"')
const ID = Buffer.from('","id":"')
const TS = Buffer.from(',"ts":')
const DATA = Buffer.from(',"data":{"seq":')
const T = Buffer.from(',"t":')
const QUOTE = 0x22
const BACKSLASH = 0x5c
const DASH = 0x2d
const DOT = 0x2e
const COMMA = 0x2c
const ZERO = 0x30
// Message id parts: at most 15 digits each (client/message-id.ts); any 15-digit integer is exact
// as a double, and so is a decimal of 15 digits divided once by its power of ten.
const MAX_DIGITS = 15
const POWERS_OF_TEN = Array.from({ length: MAX_DIGITS + 1 }, (_, k) => 10 ** k)

/** What a client counts of one delivery; one object reused for every frame. */
export interface Delivery {
  stream: string
  /** The message id `<ms>-<seq>` as its two numbers. */
  idMs: number
  idSeq: number
  /** The notification's own sequence number and publish time (µs, bench/lib/shared.ts nowUs). */
  seq: number
  t: number
}

export function emptyDelivery (): Delivery {
  return { stream: '', idMs: 0, idSeq: 0, seq: 0, t: 0 }
}

// Each test is a loop over bytes in JavaScript: Buffer's indexOf, compare and toString are calls
// into C++, each costing more than these few bytes do.
function startsWith (frame: Buffer, at: number, bytes: Buffer): boolean {
  if (frame.length < at + bytes.length) return false
  for (let i = 0; i < bytes.length; i++) if (frame[at + i] !== bytes[i]) return false
  return true
}

// The end of a run of 1 … MAX_DIGITS digits starting at `at`, or -1; its value is left in `parsed`
// (`count` digits already read before `at` add to the limit: a decimal's both parts).
let parsed = 0
function digits (frame: Buffer, at: number, value = 0, count = 0): number {
  let i = at
  for (; i < frame.length; i++) {
    const digit = frame[i] - ZERO
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
  }
  if (i === at || i - at + count > MAX_DIGITS) return -1
  parsed = value
  return i
}

// The end of a decimal `<digits>[.<digits>]` of at most MAX_DIGITS digits at `at`, or -1; its
// value (as Number() reads it) is left in `parsed`.
function decimal (frame: Buffer, at: number): number {
  const end = digits(frame, at)
  if (end < 0 || frame[end] !== DOT) return end
  const fractionEnd = digits(frame, end + 1, parsed, end - at)
  if (fractionEnd < 0) return -1
  parsed /= POWERS_OF_TEN[fractionEnd - end - 1]
  return fractionEnd
}

// Stream names by a hash of their bytes: a scenario has a hundred or so, and making each
// delivery's name a new string costs more than reading the rest of the frame.
const names = new Map<number, string>()

function sameName (name: string, frame: Buffer, start: number, end: number): boolean {
  if (name.length !== end - start) return false
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) !== frame[start + i]) return false
  return true
}

function streamName (frame: Buffer, start: number, end: number, hash: number): string {
  const known = names.get(hash)
  if (known !== undefined && sameName(known, frame, start, end)) return known
  const name = frame.toString('latin1', start, end)
  names.set(hash, name)
  return name
}

/** Fills `into` from a scale `message` frame and returns true; false for any other frame. */
export function readDelivery (frame: Buffer, into: Delivery): boolean {
  if (!startsWith(frame, 0, HEAD)) return false
  let streamEnd = HEAD.length
  let hash = 0
  while (streamEnd < frame.length && frame[streamEnd] !== QUOTE) {
    // A name with an escape in it is left to JSON.parse (stream names never have one).
    if (frame[streamEnd] === BACKSLASH) return false
    hash = (Math.imul(hash, 31) + frame[streamEnd]) | 0
    streamEnd++
  }
  if (!startsWith(frame, streamEnd, ID)) return false
  let at = digits(frame, streamEnd + ID.length)
  if (at < 0 || frame[at] !== DASH) return false
  const idMs = parsed
  at = digits(frame, at + 1)
  if (at < 0 || frame[at] !== QUOTE || !startsWith(frame, at + 1, TS)) return false
  const idSeq = parsed
  at = digits(frame, at + 1 + TS.length)
  if (at < 0) return false
  // `data` follows `ts`, unless a client publish put its `from` between them.
  if (!startsWith(frame, at, DATA)) {
    at = frame.indexOf(DATA, at)
    if (at < 0) return false
  }
  at = digits(frame, at + DATA.length)
  if (at < 0 || !startsWith(frame, at, T)) return false
  const seq = parsed
  at = decimal(frame, at + T.length)
  if (at < 0 || frame[at] !== COMMA) return false
  const t = parsed
  into.stream = streamName(frame, HEAD.length, streamEnd, hash)
  into.idMs = idMs
  into.idSeq = idSeq
  into.seq = seq
  into.t = t
  return true
}

/** A message id's two numbers, or null for an id of another shape. */
export function splitMessageId (id: string): [number, number] | null {
  const match = /^(\d{1,15})-(\d{1,15})$/.exec(id)
  return match === null ? null : [Number(match[1]), Number(match[2])]
}

// The broadcast floor (scenario.ts): one pre-framed text frame an instance writes straight to every
// socket, no edge code on the way. It is as long as a room's message frame, and read as cheaply.
const FLOOR = Buffer.from('{"event":"floor","t":')

/**
 * A complete unmasked WebSocket text frame `{"event":"floor","t":<t>,"text":"x…"}` of `bytes`
 * payload bytes (at most 65,535), `t` the time it was written (nowUs).
 */
export function floorFrame (t: number, bytes: number): Buffer {
  const bare = `${FLOOR.toString()}${t},"text":""}`
  const payload = Buffer.from(`${FLOOR.toString()}${t},"text":"${'x'.repeat(Math.max(0, bytes - bare.length))}"}`)
  const header = payload.length < 126 ? Buffer.from([0x81, payload.length]) : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, payload])
}

/** A floor frame's `t`, or NaN for any other frame. */
export function readFloor (frame: Buffer): number {
  if (!startsWith(frame, 0, FLOOR)) return NaN
  const at = decimal(frame, FLOOR.length)
  return at >= 0 && frame[at] === COMMA ? parsed : NaN
}
