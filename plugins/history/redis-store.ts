import type { BusMessage } from '../bus/index.js'
import { BusUnavailableError, InvalidOptionError } from '../errors.js'
import { isMessageId } from '../message-id.js'
import { messageFrame, type MessageTemplate } from '../message.js'
import { WriteCoalescer } from '../redis.js'
import { mapLate, mayHaveRun, outcomeUnknown } from '../outcome.js'
import { redisScript, runScript, type RedisScript, type RedisScriptClient } from '../redis-script.js'
import { shardedChannel } from '../topics.js'
import { Deadlines, positiveInteger } from '../util.js'
import type { AppendedMessage, HistoryBounds, HistoryRead, HistoryStore, OnceKey } from './store.js'

/**
 * The two commands the store sends. Any ioredis client fits (`app.redis` of @fastify/redis is
 * ioredis 6, ours is ioredis 5): the store never names either version's types.
 */
export type RedisHistoryClient = RedisScriptClient

export interface RedisHistoryStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisHistoryClient
  /** Prefix of every history key. @default 'notify:history:' */
  keyPrefix?: string
  /**
   * Put each message on the bus from the same script that appends it, so every instance sees a
   * topic's ids in history order: `true` PUBLISHes in mqemitter-redis's wire format (right when
   * the bus is mqemitter-redis on this same Redis, without a pub/sub prefix); `'sharded'`
   * SPUBLISHes for the cluster bus (`createClusterEmitter`) on this same Redis Cluster; `false`
   * leaves publishing to the caller.
   * @default true
   */
  publish?: boolean | 'sharded'
  /**
   * How long a topic's latest id is remembered after its last message, in seconds, so that a
   * client that had seen everything resumes without a gap after the messages themselves expired.
   * @default 86400
   */
  metaTtl?: number
  /**
   * How long an append or a read may take before it fails with `FST_NOTIFY_BUS_UNAVAILABLE` (a
   * publish answers 503, as when the bus itself is down; a resume reports a gap), in ms.
   * @default 1000
   */
  timeout?: number
  /**
   * How long a read (a resume, a live repair, a subscribe's position) may take before it fails,
   * in ms. Longer than `timeout`: when thousands of clients resume at once (a rolling deploy),
   * their reads queue behind each other on the pipelined connection, and waiting a little longer
   * replays what history holds instead of reporting a gap.
   * @default 5000
   */
  readTimeout?: number
  /** Clock in ms, for ids (never below the topic's latest), timestamps and expiry. @default Date.now */
  now?: () => number
}

// Puts a message on the bus the way the store was told to (ARGV[8]: 0 no, 1 PUBLISH in
// mqemitter-redis's wire format, msgpack `{ id, msg }` with a unique `id` for its de-duplication,
// 2 SPUBLISH for the cluster bus) on the channel ARGV[9]; the message's topic is ARGV[1], its
// `trace` (a traceparent) ARGV[11] when given (the append script's ARGV[10] is taken).
// `receivers`: how many subscribers got it (-1 when not published here).
const PUT_ON_BUS = `
local message = { topic = ARGV[1], id = id, frame = frame, prev = prev, trace = ARGV[11] }
local receivers = -1
if ARGV[8] == '1' then
  receivers = redis.call('PUBLISH', ARGV[9], cmsgpack.pack({ id = ARGV[9] .. ' ' .. id, msg = message }))
elseif ARGV[8] == '2' then
  receivers = redis.call('SPUBLISH', ARGV[9], cjson.encode(message))
end
`

// Every entry and the latest-id key remember which Redis wrote them (its replication id, new on
// every failover and every restart): Redis replicates asynchronously, so a promoted replica or a
// restarted master may lack the last writes of its predecessor, and nothing else in the data
// shows they ever existed. An entry written by another Redis than the one before it is marked
// (`b`), and a read across a mark is a gap: it may be over lost messages.
const EPOCH = "string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')"

// KEYS: stream, latest id, and for a publish under an idempotency key its record here. ARGV:
// topic, frame head, frame tail, size, ttl ms, now ms, meta ttl s, publish (0: no, 1: PUBLISH
// for mqemitter-redis, 2: SPUBLISH for the cluster bus), channel, the record's ttl s.
// The record is written in the same step as the append and the publish, so a later attempt
// under the same key (a retry after an unknown outcome, a redelivery after a crash) finds it and
// answers the original id without appending: nothing is ever shown twice.
// The id is chosen here, from the caller's clock but never below the topic's latest, so the frame
// can carry it; each entry keeps the id before it (`p`), which is how a read detects a gap, and
// so does the published message, which is how a receiver detects a hole in live delivery.
const APPEND = `
if KEYS[3] then
  local done = redis.call('GET', KEYS[3])
  if done then
    local r = cjson.decode(done)
    return { r[1], r[2], r[3], 1 }
  end
end
local epoch = ${EPOCH}
local last = redis.call('GET', KEYS[2])
local lastEpoch = nil
if last then
  local space = string.find(last, ' ', 1, true)
  if space then
    lastEpoch = string.sub(last, space + 1)
    last = string.sub(last, 1, space - 1)
  end
else
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if top[1] then last = top[1][1] end
end
local ms = tonumber(ARGV[6])
local seq = 0
local prev = ''
if last then
  prev = last
  local dash = string.find(last, '-', 1, true)
  local lastMs = tonumber(string.sub(last, 1, dash - 1))
  if lastMs >= ms then
    ms = lastMs
    seq = tonumber(string.sub(last, dash + 1)) + 1
  end
end
local id = string.format('%d-%d', ms, seq)
local frame = ARGV[2] .. id .. '","ts":' .. string.format('%d', ms) .. ARGV[3]
if last and lastEpoch ~= epoch then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], id, 'f', frame, 'p', prev, 'b', '1')
else
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], id, 'f', frame, 'p', prev)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], id .. ' ' .. epoch, 'EX', ARGV[7])${PUT_ON_BUS}if KEYS[3] then
  redis.call('SET', KEYS[3], cjson.encode({ id, prev, receivers }), 'EX', ARGV[10])
end
return { id, prev, receivers, 0 }
`

// KEYS: as APPEND's, for the hash slot only. ARGV: topic, id, frame, four unused, publish,
// channel (APPEND's places). A message that keeps no history (so no `prev`), put on the bus as
// the append does.
const PUBLISH = `
local id = ARGV[2]
local frame = ARGV[3]
local prev = nil${PUT_ON_BUS}return receivers
`

// KEYS: stream and latest id of each topic read, in pairs. ARGV: since ('' for the topic's
// start), limit, oldest ms kept, for each topic in turn. Returns, per topic, its id, frame,
// prev, id, frame, prev… or 0 for a gap (a nil would end the reply's array there). One script
// for every stream a subscribe resumes: one round trip and one command, however many.
const READ = `
local epoch = nil
local function read (stream, last, since, limit, oldest)
  local start = '-'
  if since ~= '' then start = '(' .. since end
  local entries = redis.call('XRANGE', stream, start, '+', 'COUNT', limit + 1)
  if #entries == 0 then
    local latest = redis.call('GET', last)
    if not latest then
      if since == '' then return {} end
      return 0
    end
    epoch = epoch or ${EPOCH}
    if latest == since .. ' ' .. epoch then return {} end
    return 0
  end
  if #entries > limit or entries[1][2][4] ~= since then return 0 end
  local dash = string.find(entries[1][1], '-', 1, true)
  if tonumber(string.sub(entries[1][1], 1, dash - 1)) < oldest then return 0 end
  local out = {}
  for _, entry in ipairs(entries) do
    if entry[2][5] == 'b' then return 0 end
    out[#out + 1] = entry[1]
    out[#out + 1] = entry[2][2]
    out[#out + 1] = entry[2][4]
  end
  return out
end
local replies = {}
for i = 1, #KEYS / 2 do
  replies[i] = read(KEYS[2 * i - 1], KEYS[2 * i], ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]))
end
return replies
`

// KEYS: stream and latest id of each topic, in pairs. Each topic's latest id, '' when it has none.
const LATEST = `
local replies = {}
for i = 1, #KEYS / 2 do
  local latest = redis.call('GET', KEYS[2 * i])
  if not latest then
    latest = ''
  else
    local space = string.find(latest, ' ', 1, true)
    if space then latest = string.sub(latest, 1, space - 1) end
  end
  replies[i] = latest
end
return replies
`

const APPEND_SCRIPT = redisScript(APPEND)
const READ_SCRIPT = redisScript(READ)
const LATEST_SCRIPT = redisScript(LATEST)
const PUBLISH_SCRIPT = redisScript(PUBLISH)

/**
 * History in Redis Streams, one stream per topic (`XADD … MAXLEN ~ size`, expiring `ttl` after
 * its last write) plus a small key with the topic's latest id. Appending and publishing are one
 * script, so on every instance a topic's messages arrive in the order of their ids.
 */
export class RedisHistoryStore implements HistoryStore {
  readonly appendPublishes: boolean
  readonly recordsOnce: boolean
  readonly keyPrefix: string
  readonly #publish: 0 | 1 | 2
  readonly #client: RedisHistoryClient
  readonly #writes: WriteCoalescer
  readonly #metaTtl: number
  readonly #timeout: number
  readonly #deadlines: Deadlines
  readonly #readDeadlines: Deadlines
  readonly #now: () => number
  /** A Cluster client: one script reaches one hash slot, so reads of many topics go a script each. */
  readonly #cluster: boolean

  constructor (opts: RedisHistoryStoreOptions) {
    if (typeof opts?.client?.evalsha !== 'function' || typeof opts.client.eval !== 'function') {
      throw new InvalidOptionError('client must be an ioredis client')
    }
    const keyPrefix = opts.keyPrefix ?? 'notify:history:'
    if (typeof keyPrefix !== 'string') throw new InvalidOptionError('keyPrefix must be a string')
    if (opts.now !== undefined && typeof opts.now !== 'function') throw new InvalidOptionError('now must be a function')
    const publish = opts.publish ?? true
    if (publish !== true && publish !== false && publish !== 'sharded') throw new InvalidOptionError("publish must be true, false or 'sharded'")
    // The first {…} of a key is its hash tag: one in the prefix would move the keys off the channel's slot.
    if (publish === 'sharded' && /[{}]/.test(keyPrefix)) throw new InvalidOptionError('keyPrefix must not hold braces on Redis Cluster')
    this.#publish = publish === 'sharded' ? 2 : publish ? 1 : 0
    this.#client = opts.client
    // Appends made together (a burst of publishes) go to Redis in one write.
    this.#writes = new WriteCoalescer(opts.client, 0)
    this.keyPrefix = keyPrefix
    this.appendPublishes = this.#publish !== 0
    this.recordsOnce = this.appendPublishes
    this.#metaTtl = positiveInteger('metaTtl', opts.metaTtl, 86400)
    this.#timeout = positiveInteger('timeout', opts.timeout, 1000)
    this.#deadlines = new Deadlines(this.#timeout)
    this.#readDeadlines = new Deadlines(positiveInteger('readTimeout', opts.readTimeout, 5000))
    this.#now = opts.now ?? Date.now
    this.#cluster = (opts.client as { isCluster?: unknown }).isCluster === true
  }

  async append (topic: string, template: MessageTemplate, bounds: HistoryBounds, once?: OnceKey, trace?: string): Promise<AppendedMessage> {
    const args = [
      topic, template.head, template.tail, bounds.size, bounds.ttl * 1000, this.#now(),
      Math.max(this.#metaTtl, bounds.ttl), this.#publish, this.#channel(topic), once?.ttl ?? 0
    ]
    if (trace !== undefined) args.push(trace)
    const appended = (reply: unknown): AppendedMessage => {
      const [id, prev, receivers, replayed] = reply as [string, string, number, number]
      const message: AppendedMessage = { topic, id, frame: messageFrame(template, id, Number(id.slice(0, id.indexOf('-')))), prev }
      if (receivers >= 0) message.receivers = receivers
      if (replayed === 1) message.replayed = true
      return message
    }
    // Only a record kept with the publish makes a repeated attempt safe.
    const record = once !== undefined && this.recordsOnce ? `:once:${once.key}` : null
    try {
      return appended(await this.#run(APPEND_SCRIPT, topic, args, record))
    } catch (err) {
      return mapLate(err, appended)
    }
  }

  async read (topic: string, since: string, bounds: HistoryBounds, limit: number): Promise<BusMessage[] | null> {
    return (await this.readMany([{ topic, since, bounds, limit }]))[0]
  }

  /**
   * One READ script for every read (one command, one round trip, within one `readTimeout`); on
   * Redis Cluster, where one script reaches one hash slot, a script per topic, sent together.
   */
  async readMany (reads: readonly HistoryRead[]): Promise<Array<BusMessage[] | null>> {
    // A `since` that is no message id is a gap without asking Redis.
    const asked = reads.filter(({ since }) => since === '' || isMessageId(since))
    const now = this.#now()
    const args = (read: HistoryRead): Array<string | number> => [read.since, read.limit, now - read.bounds.ttl * 1000]
    const replies = this.#cluster
      ? (await Promise.all(asked.map((read) => this.#runReads(READ_SCRIPT, [read.topic], args(read))))).flat()
      : asked.length === 0 ? [] : await this.#runReads(READ_SCRIPT, asked.map((read) => read.topic), asked.flatMap(args))
    let next = 0
    return reads.map(({ topic, since }) => {
      if (since !== '' && !isMessageId(since)) return null
      const reply = replies[next++] as string[] | 0
      if (reply === 0) return null
      const messages: BusMessage[] = []
      for (let i = 0; i < reply.length; i += 3) messages.push({ topic, id: reply[i], frame: reply[i + 1], prev: reply[i + 2] })
      return messages
    })
  }

  /**
   * Puts a message of a stream without history on the bus as `append` does (the same channel and
   * wire format), for a publisher that writes to the edges' Redis without a bus of its own.
   * Resolves with how many instances subscribe to the topic (null when not published here).
   */
  async publish (message: BusMessage): Promise<number | null> {
    const { topic, id, frame } = message
    const receivers = await this.#run(PUBLISH_SCRIPT, topic, [topic, id, frame, '', '', '', '', this.#publish, this.#channel(topic)]) as number
    return receivers >= 0 ? receivers : null
  }

  async latest (topic: string): Promise<string> {
    return (await this.latestMany([topic]))[0]
  }

  /** One LATEST script for every topic, as `readMany`. */
  async latestMany (topics: readonly string[]): Promise<string[]> {
    const replies = this.#cluster
      ? (await Promise.all(topics.map((topic) => this.#runReads(LATEST_SCRIPT, [topic], [])))).flat()
      : topics.length === 0 ? [] : await this.#runReads(LATEST_SCRIPT, topics, [])
    return replies as string[]
  }

  async close (): Promise<void> {}

  #channel (topic: string): string {
    return this.#publish === 2 ? shardedChannel(topic) : topic
  }

  /**
   * Runs a script on a topic's keys (one hash slot, for Redis Cluster), within the timeout. An
   * append (`record` is a string: the suffix of its idempotency record, or null) that was sent
   * and not answered fails with an unknown outcome, carrying the script's late answer.
   */
  async #run (script: RedisScript, topic: string, args: Array<string | number>, record?: string | null): Promise<unknown> {
    const keys = this.#keys([topic])
    if (typeof record === 'string') keys.push(keys[0] + record)
    return this.#within(script, runScript(this.#client, script, keys, args), record)
  }

  /** Runs a read script on the keys of `topics`, within `readTimeout`: an array, an answer per topic. */
  async #runReads (script: RedisScript, topics: readonly string[], args: Array<string | number>): Promise<unknown[]> {
    return await this.#within(script, runScript(this.#client, script, this.#keys(topics), args)) as unknown[]
  }

  /** Each topic's stream and latest-id keys, in pairs. */
  #keys (topics: readonly string[]): string[] {
    const keys: string[] = []
    for (const topic of topics) {
      const stream = `${this.keyPrefix}{${topic}}`
      keys.push(stream, `${stream}:last`)
    }
    return keys
  }

  async #within (script: RedisScript, work: Promise<unknown>, record?: string | null): Promise<unknown> {
    const reading = script === READ_SCRIPT || script === LATEST_SCRIPT
    let result: { value: unknown } | null
    this.#writes.hold()
    try {
      result = await (reading ? this.#readDeadlines : this.#deadlines).race(work)
    } catch (err) {
      const reason = `history: ${(err as Error).message}`
      if (record !== undefined && mayHaveRun(err)) throw outcomeUnknown(reason, work)
      throw new BusUnavailableError(reason)
    }
    if (result === null) {
      const reason = `history: no answer within ${reading ? 'readTimeout' : `${this.#timeout} ms`}`
      if (record !== undefined) throw outcomeUnknown(reason, work)
      throw new BusUnavailableError(reason)
    }
    return result.value
  }
}
