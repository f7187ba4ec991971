// The load generator reads every `message` frame of the scale scenario: 100,000 of them per
// broadcast. JSON.parse of the whole frame (and the utf8 string it needs first) was most of the
// clients' own JavaScript per delivery, on the cores the instances are measured on. A message
// frame is always `{"event":"message","stream":"<name>","id":"<ms>-<seq>","ts":<n>,…"data":{"seq":<n>,"t":<n>,…}}`
// (plugins/message.ts builds it, bench/lib/shared.ts `notification` its data), so the few fields
// the clients count are read in place. Anything else returns false: the caller parses it whole.

const HEAD = Buffer.from('{"event":"message","stream":"')
const ID = Buffer.from('","id":"')
const DATA = Buffer.from('"data":{"seq":')
const T = Buffer.from(',"t":')
const QUOTE = 0x22
const BACKSLASH = 0x5c
const DASH = 0x2d
const COMMA = 0x2c
const ZERO = 0x30
// Message id parts: at most 15 digits each (client/message-id.ts), exact as doubles.
const MAX_DIGITS = 15

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

function startsWith (frame: Buffer, at: number, bytes: Buffer): boolean {
  if (frame.length < at + bytes.length) return false
  for (let i = 0; i < bytes.length; i++) if (frame[at + i] !== bytes[i]) return false
  return true
}

// The end of a run of 1 … MAX_DIGITS digits starting at `at`, or -1; its value is left in `parsed`.
let parsed = 0
function digits (frame: Buffer, at: number): number {
  let value = 0
  let i = at
  for (; i < frame.length && i - at <= MAX_DIGITS; i++) {
    const digit = frame[i] - ZERO
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
  }
  if (i === at || i - at > MAX_DIGITS) return -1
  parsed = value
  return i
}

/** Fills `into` from a scale `message` frame and returns true; false for any other frame. */
export function readDelivery (frame: Buffer, into: Delivery): boolean {
  if (!startsWith(frame, 0, HEAD)) return false
  const streamEnd = frame.indexOf(QUOTE, HEAD.length)
  // A name with an escape in it is left to JSON.parse (stream names never have one).
  if (streamEnd < 0 || frame.indexOf(BACKSLASH, HEAD.length) < streamEnd || !startsWith(frame, streamEnd, ID)) return false
  let at = digits(frame, streamEnd + ID.length)
  if (at < 0 || frame[at] !== DASH) return false
  const idMs = parsed
  at = digits(frame, at + 1)
  if (at < 0 || frame[at] !== QUOTE) return false
  const idSeq = parsed
  const data = frame.indexOf(DATA, at)
  if (data < 0) return false
  at = digits(frame, data + DATA.length)
  if (at < 0 || !startsWith(frame, at, T)) return false
  const seq = parsed
  const tEnd = frame.indexOf(COMMA, at + T.length)
  const t = tEnd <= at + T.length ? NaN : Number(frame.toString('latin1', at + T.length, tEnd))
  if (Number.isNaN(t)) return false
  into.stream = frame.toString('latin1', HEAD.length, streamEnd)
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
