import t from 'tap'
import Fastify from 'fastify'
import mqemitter from 'mqemitter'
import { notifyBus, type NotifyBusOptions } from '../plugins/index.js'
import { busSuite } from './abstract/bus.js'
import { sharedRedis } from './redis-server.js'

async function bus (t: { teardown: (fn: () => unknown) => void }, opts: NotifyBusOptions): Promise<ReturnType<typeof Fastify>['notifyBus']> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(notifyBus, opts)
  await app.ready()
  return app.notifyBus
}

t.test('in-process bus', async (t) => {
  busSuite({ test: t.test.bind(t), prefix: 'memory', builder: (t) => bus(t, {}) })
  t.test('names its backend', async (t) => {
    t.same((await bus(t, {})).health(), { healthy: true, backend: 'memory' })
    t.same((await bus(t, { emitter: mqemitter(), closeEmitter: true })).health(), { healthy: true, backend: 'emitter' })
  })
})

t.test('Redis bus', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  busSuite({ test: t.test.bind(t), prefix, builder: (t) => bus(t, { redis: url }) })
  t.test('names its backend and its connections', async (t) => {
    t.same((await bus(t, { redis: url })).health(), { healthy: true, backend: 'redis', redis: { pub: 'ready', sub: 'ready' } })
  })
})

t.test('Redis bus on the lean emitter', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  busSuite({ test: t.test.bind(t), prefix, builder: (t) => bus(t, { redis: url, redisEmitter: 'lean' }) })
  t.test('names its backend and its connections', async (t) => {
    t.same((await bus(t, { redis: url, redisEmitter: 'lean' })).health(), { healthy: true, backend: 'redis', redis: { pub: 'ready', sub: 'ready' } })
  })
})
