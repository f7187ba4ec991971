import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { declareStreams, type DeclaredStream, type StreamDefinition } from './declarations.js'
import { MessageIdGenerator } from './message-id.js'
import { metricsOf } from './recorder.js'
import { messageFrame, type MessageTemplate } from './message.js'
import { perTopic, publisherOf } from './publishing.js'
import { topicPrefixOption } from './topics.js'
import { positiveInteger } from './util.js'

export type { Notify, PublishInput, PublishResult } from './publishing.js'

export interface NotifyOptions {
  /** The declared streams. */
  streams: StreamDefinition[]
  /** Prefix of every bus topic, so deployments can share one Redis. @default 'notify' */
  topicPrefix?: string
  /** Most users one publish may address. @default 1000 */
  maxUsersPerPublish?: number
}

async function fastifyNotify (app: FastifyInstance, opts: NotifyOptions): Promise<void> {
  const prefix = topicPrefixOption(opts.topicPrefix)
  const maxUsers = positiveInteger('maxUsersPerPublish', opts.maxUsersPerPublish, 1000)
  const streams = declareStreams(opts.streams, prefix)
  const ids = new MessageIdGenerator()
  const bus = app.notifyBus
  const withHistory = [...streams.values()].filter((stream) => stream.history !== undefined)
  if (withHistory.length > 0 && !app.hasDecorator('notifyHistory')) {
    throw new InvalidOptionError(`stream ${withHistory[0].name} keeps history: register the history plugin first`)
  }

  async function send (stream: DeclaredStream, topic: string, template: MessageTemplate): Promise<string> {
    if (stream.history === undefined) {
      const { id, ts } = ids.next()
      await bus.publish({ topic, id, frame: messageFrame(template, id, ts) })
      return id
    }
    // Durable first: a message is on the bus only once history holds it, under the same id.
    const { store } = app.notifyHistory
    const message = await store.append(topic, template, stream.history)
    if (!store.appendPublishes) await bus.publish(message)
    return message.id
  }

  app.decorate('notify', { streams, publish: publisherOf(streams, maxUsers, perTopic(send, metricsOf(app))) })
}

export const notify = fp(fastifyNotify, {
  fastify: '5.x',
  name: 'notify-edge-notify',
  dependencies: ['notify-edge-bus']
})
export default notify
