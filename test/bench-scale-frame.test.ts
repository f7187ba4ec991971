import t from 'tap'
import { emptyDelivery, readDelivery, splitMessageId } from '../bench/scale/delivery-frame.js'
import { notification } from '../bench/lib/shared.js'
import { messageFrame, messageTemplate } from '../plugins/message.js'

// The scale clients read a delivery's fields in place instead of parsing the frame: they must read
// what JSON.parse reads from every frame the edge writes, and refuse (false) anything else, which
// the clients then parse whole.

const frameOf = (stream: string, id: string, seq: number, from?: string): Buffer =>
  Buffer.from(messageFrame(messageTemplate(stream, notification(seq), from), id, 1765000000000))

t.test('reads what JSON.parse reads from the frames the edge writes', async (t) => {
  for (const [stream, id, seq, from] of [['reward', '1765000000000-0', 0], ['room42', '1765000000001-17', 123456], ['reward', '1-999999999999999', 7, 'user 1']] as const) {
    const frame = frameOf(stream, id, seq, from)
    const parsed = JSON.parse(frame.toString())
    const into = emptyDelivery()
    t.equal(readDelivery(frame, into), true, `${stream} ${id}`)
    t.same(into, { stream: parsed.stream, idMs: Number(id.split('-')[0]), idSeq: Number(id.split('-')[1]), seq: parsed.data.seq, t: parsed.data.t })
  }
})

t.test('refuses every other frame, leaving the delivery untouched', async (t) => {
  const others = [
    '{"event":"subscribed","id":"s","streams":["reward"]}',
    '{"event":"gap","streams":["reward"]}',
    '{"event":"message","stream":"reward","id":"abc","ts":1,"data":{"seq":1,"t":2,"text":""}}',
    '{"event":"message","stream":"reward","id":"1-","ts":1,"data":{"seq":1,"t":2,"text":""}}',
    '{"event":"message","stream":"reward","id":"1234567890123456-1","ts":1,"data":{"seq":1,"t":2,"text":""}}',
    '{"event":"message","stream":"re\\"ward","id":"1-1","ts":1,"data":{"seq":1,"t":2,"text":""}}',
    '{"event":"message","stream":"reward","id":"1-1","ts":1,"data":{"other":1}}',
    '{"event":"message","stream":"reward","id":"1-1","ts":1,"data":{"seq":1,"t":,"text":""}}',
    '{"event":"message","stream":"reward","id":"1-1","ts":1,"data":{"seq":1,"t":"x","text":""}}',
    '{"event":"message","stream":"reward"',
    ''
  ]
  for (const text of others) {
    const into = emptyDelivery()
    t.equal(readDelivery(Buffer.from(text), into), false, text)
    t.same(into, emptyDelivery())
  }
})

t.test('splits a message id into its two numbers, or null for another shape', async (t) => {
  t.same(splitMessageId('1765000000000-3'), [1765000000000, 3])
  t.equal(splitMessageId('1765000000000'), null)
  t.equal(splitMessageId('a-1'), null)
})
