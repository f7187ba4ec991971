import t from 'tap'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import mqemitterRedis from 'mqemitter-redis'
import { RedisHistoryStore } from '../plugins/index.js'
import { messageTemplate } from '../plugins/message.js'
import { historyStoreSuite, TestClock } from './abstract/history-store.js'
import { redisServer, until } from './redis-server.js'

const bounds = { size: 100, ttl: 60 }

t.test('the Redis store', async (t) => {
  const server = await redisServer(t)
  historyStoreSuite(t, async (t, now) => {
    const client = new Redis(server.url)
    t.teardown(() => client.quit())
    return new RedisHistoryStore({ client, now })
  })
})

t.test('publishes each message from the append script, as mqemitter-redis receives it', async (t) => {
  const server = await redisServer(t)
  const client = new Redis(server.url)
  const emitter = mqemitterRedis({ connectionString: server.url })
  t.teardown(async () => {
    await client.quit()
    await new Promise<void>((resolve) => emitter.close(() => resolve()))
  })
  const topic = 'notify/u/order/YWxpY2U'
  const received: unknown[] = []
  let third!: () => void
  const all = new Promise<void>((resolve) => { third = resolve })
  const listener = (message: unknown, done: () => void): void => {
    if (received.push(message) === 3) third()
    done()
  }
  await new Promise<void>((resolve) => emitter.on(topic, listener, () => resolve()))
  const store = new RedisHistoryStore({ client })
  t.equal(store.appendPublishes, true)
  const messages = []
  for (let n = 0; n < 3; n++) messages.push(await store.append(topic, messageTemplate('order', { text: `é 漢字 ${n}` }), bounds))
  await all
  t.same(messages.map((m) => m.receivers), [1, 1, 1], 'the script tells how many connections subscribe (PUBLISH\'s reply)')
  t.same(received, messages.map(({ receivers: _, ...m }) => m), 'the same topic, id and frame as history holds, in order')
  t.equal((await store.append('notify/u/order/Ym9i', messageTemplate('order', {}), bounds)).receivers, 0, 'nobody subscribes to bob')
})

t.test('keeps the keys of a topic bounded and expiring', async (t) => {
  const server = await redisServer(t)
  const client = new Redis(server.url)
  t.teardown(() => client.quit())
  const store = new RedisHistoryStore({ client, keyPrefix: 'h:', publish: false, metaTtl: 600 })
  t.equal(store.appendPublishes, false)
  for (let n = 0; n < 500; n++) await store.append('topic', messageTemplate('s', { n }), { size: 10, ttl: 60 })
  t.ok(await client.xlen('h:{topic}') < 200, 'MAXLEN ~ trims')
  t.ok(await client.pttl('h:{topic}') > 59_000, 'the stream expires ttl after its last write')
  t.ok(await client.ttl('h:{topic}:last') > 590, 'the latest id lives metaTtl')
  await store.close()
  t.equal(await client.ping(), 'PONG', 'closing the store leaves the client it was given open')
})

t.test('answers 503 within its timeout when Redis is away', async (t) => {
  const server = await redisServer(t)
  const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0 })
  t.teardown(() => client.disconnect())
  await once(client, 'ready')
  const clock = new TestClock()
  const store = new RedisHistoryStore({ client, now: clock.now, timeout: 200 })
  const { id } = await store.append('topic', messageTemplate('s', 1), bounds)
  await server.stop()
  await t.rejects(store.append('topic', messageTemplate('s', 2), bounds), { code: 'FST_NOTIFY_BUS_UNAVAILABLE', statusCode: 503 })
  await t.rejects(store.read('topic', id, bounds, 10), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' })
})

t.test('answers 503 when Redis does not answer in time', async (t) => {
  const server = await redisServer(t)
  const client = new Redis(server.url)
  const blocker = new Redis(server.url)
  t.teardown(() => { client.disconnect(); blocker.disconnect() })
  // The first append loads the script: done with the default timeout, so a loaded machine cannot fail it.
  await new RedisHistoryStore({ client }).append('topic', messageTemplate('s', 1), bounds)
  const store = new RedisHistoryStore({ client, timeout: 100, readTimeout: 100 })
  // A frozen Redis: every other client's commands wait while it is paused.
  await blocker.client('PAUSE', 500, 'ALL')
  // Sent and not answered: it may still run, so the answer says the outcome is unknown.
  const err = await store.append('topic', messageTemplate('s', 2), bounds).catch((e: unknown) => e) as { code: string, statusCode: number, late: Promise<unknown> }
  t.same([err.code, err.statusCode], ['FST_NOTIFY_OUTCOME_UNKNOWN', 503])
  const late = await err.late as { id: string, prev: string }
  t.match(late, { topic: 'topic', id: /^\d+-\d+$/ }, 'the late outcome is the message appended once Redis answered')
  t.same((await store.read('topic', late.prev, bounds, 10))?.map((m) => m.id), [late.id], 'it is in history')
  await blocker.client('PAUSE', 500, 'ALL')
  await t.rejects(store.read('topic', '', bounds, 10), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' }, 'a read that times out is only unavailable')
  await blocker.client('PAUSE', 500, 'ALL')
  const reads = ['topic', 'other'].map((topic) => ({ topic, since: '', bounds, limit: 10 }))
  await t.rejects(store.readMany(reads), { code: 'FST_NOTIFY_BUS_UNAVAILABLE' }, 'so is a batch of reads, as a whole: each stream it resumes gets a gap')
  // A read may wait longer than an append (readTimeout): a burst of resumes queues, and is served.
  const patient = new RedisHistoryStore({ client, timeout: 100 })
  await blocker.client('PAUSE', 300, 'ALL')
  t.same((await patient.read('topic', late.prev, bounds, 10))?.map((m) => m.id), [late.id], 'served after 300 ms, past the 100 ms append timeout')
})

t.test('rejects bad options with a coded error', async (t) => {
  const client = { evalsha: async () => null, eval: async () => null }
  for (const opts of [{}, { client, keyPrefix: 5 }, { client, metaTtl: 0 }, { client, timeout: -1 }, { client, readTimeout: 0 }, { client, now: 'now' }, { client, publish: 'yes' }, { client, publish: 'sharded', keyPrefix: 'h{x}:' }]) {
    t.throws(() => new RedisHistoryStore(opts as never), { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(opts))
  }
})

t.test('a read across a change of Redis (failover, restart) is a gap: what the old master accepted last may be lost', async (t) => {
  const master = await redisServer(t)
  const replica = await redisServer(t, ['--replicaof', '127.0.0.1', String(master.port)])
  const [onMaster, onReplica] = [new Redis(master.url), new Redis(replica.url)]
  t.teardown(() => { onMaster.disconnect(); onReplica.disconnect() })
  // A master takes a new replication id when its first replica asks to sync: let that happen
  // before the history below is written, or the master's own entries would straddle two ids.
  await until('the replica attached to the master', async () => (await onMaster.info('replication')).includes('connected_slaves:1'), 10_000)
  const clock = new TestClock()
  const old = new RedisHistoryStore({ client: onMaster, now: clock.now, publish: false })
  const topic = 'notify/u/order/YWxpY2U'
  const kept = []
  for (let n = 0; n < 3; n++) kept.push((await old.append(topic, messageTemplate('s', { n }), bounds)).id)
  await onMaster.wait(1, 5000)
  // Promoted before it saw the next two: asynchronous replication loses them on a failover.
  await onReplica.replicaof('NO', 'ONE')
  const lost = []
  for (let n = 3; n < 5; n++) lost.push((await old.append(topic, messageTemplate('s', { n }), bounds)).id)
  clock.advance(1)
  const store = new RedisHistoryStore({ client: onReplica, now: clock.now, publish: false })
  t.same((await store.read(topic, kept[2], bounds, 10)), null, 'the last message the new master holds, before anything new: a gap')
  const fresh = []
  for (let n = 5; n < 8; n++) fresh.push((await store.append(topic, messageTemplate('s', { n }), bounds)).id)
  t.same((await store.read(topic, kept[0], bounds, 10)), null, 'from before the failover: a gap, though every entry links to the one before it')
  t.same((await store.read(topic, kept[2], bounds, 10)), null, 'from the last message kept: a gap')
  t.same((await store.read(topic, lost[1], bounds, 10)), null, 'from a lost message: a gap')
  t.same((await store.read(topic, fresh[0], bounds, 10))?.map((m) => m.id), fresh.slice(1), 'after the failover: complete')
  t.same((await store.read(topic, fresh[2], bounds, 10)), [], 'from the latest: nothing missed')
  t.same((await old.read(topic, kept[0], bounds, 10))?.map((m) => m.id), [...kept.slice(1), ...lost], 'on the old master nothing changed')
})
