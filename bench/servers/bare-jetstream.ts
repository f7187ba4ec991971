import { connect } from '@nats-io/transport-node'
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream'
import { argument, serve } from '../lib/ipc.js'
import { Consumed } from '../lib/consumed.js'

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

const consumed = new Consumed()
;(async () => {
  for await (const msg of messages) {
    const t = (JSON.parse(new TextDecoder().decode(msg.data)) as { t: number }).t
    msg.ack()
    consumed.seen(t)
  }
})().catch(() => {})

serve(consumed.commands(async () => {
  await messages.close()
  await jsm.streams.delete(stream).catch(() => {})
  await nc.close()
}), {})
