import t from 'tap'
import { once } from 'node:events'
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import { redisServer, sharedRedis } from './redis-server.js'

t.test('a private redis-server answers, stops and starts again on the same port', async (t) => {
  const server = await redisServer(t)
  t.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/)
  const probe = (): Promise<string> => {
    const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    client.on('error', () => {})
    return client.ping().finally(() => client.disconnect())
  }
  t.equal(await probe(), 'PONG')
  await server.stop()
  await t.rejects(once(connect(server.port, '127.0.0.1'), 'connect'), { code: 'ECONNREFUSED' })
  await server.start()
  t.equal(await probe(), 'PONG')
})

t.test('fails with a clear message when redis-server is not on PATH', async (t) => {
  const path = process.env.PATH
  t.teardown(() => { process.env.PATH = path })
  process.env.PATH = '/nonexistent'
  await t.rejects(redisServer(t), { message: /redis-server is not on PATH/ })
})

t.test('shared Redis comes with a prefix unique to the file and run', async (t) => {
  const one = await sharedRedis(t)
  const two = await sharedRedis(t)
  t.match(one.prefix, /^t-redis-server-test-ts-[0-9a-f]{8}$/)
  t.not(one.prefix, two.prefix)
  const client = new Redis(one.url)
  t.teardown(() => client.quit())
  t.equal(await client.ping(), 'PONG')
})
