import { connect } from '@nats-io/transport-node'
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream'
import { argument, serve } from '../lib/ipc.js'
import { nowUs } from '../lib/shared.js'

// The pipelines scenario's JetStream yardstick: the client library the edge uses, the same stream
// and consumer settings and prefetch, doing nothing but parse and ack.

const nc = await connect({ servers: argument('nats')! })
const stream = argument('stream')!
const durable = argument('consumer')!
const prefetch = Number(argument('prefetch') ?? 100)
const jsm = await jetstreamManager(nc)
await jsm.streams.add({ name: stream, subjects: [`${argument('prefix')!}.>`], storage: StorageType.File, retention: RetentionPolicy.Workqueue })
await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, max_ack_pending: 10 * prefetch })
const messages = await (await jetstream(nc).consumers.get(stream, durable)).consume({ max_messages: prefetch })

let consumed = 0
let firstT = Infinity
let lastAt = 0
let cpuStart = process.cpuUsage()
let waiting = null as { expected: number, resolve: () => void } | null
;(async () => {
  for await (const msg of messages) {
    const t = (JSON.parse(new TextDecoder().decode(msg.data)) as { t: number }).t
    msg.ack()
    if (t < firstT) firstT = t
    lastAt = nowUs()
    if (++consumed >= (waiting?.expected ?? Infinity)) waiting?.resolve()
  }
})().catch(() => {})

serve({
  arm: () => {
    consumed = 0
    firstT = Infinity
    cpuStart = process.cpuUsage()
  },
  wait: async ({ expected }: { expected: number }) => {
    if (consumed < expected) await new Promise<void>((resolve) => { waiting = { expected, resolve } })
    waiting = null
    const { user, system } = process.cpuUsage(cpuStart)
    return { consumed, spanMs: (lastAt - firstT) / 1000, cpuUs: user + system }
  },
  close: async () => {
    await messages.close()
    await jsm.streams.delete(stream).catch(() => {})
    await nc.close()
    setImmediate(() => process.exit(0))
  }
}, {})
