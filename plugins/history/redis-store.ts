import { createHash } from 'node:crypto'
import type { BusMessage } from '../bus/index.js'
import { BusUnavailableError, InvalidOptionError } from '../errors.js'
import { isMessageId } from '../message-id.js'
import { messageFrame, type MessageTemplate } from '../message.js'
import { positiveInteger, within } from '../util.js'
import type { HistoryBounds, HistoryStore } from './store.js'

/**
 * The two commands the store sends. Any ioredis client fits (`app.redis` of @fastify/redis is
 * ioredis 6, ours is ioredis 5): the store never names either version's types.
 */
export interface RedisHistoryClient {
  evalsha (sha: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

export interface RedisHistoryStoreOptions {
  /** The client, e.g. `app.redis`; the store never closes it. */
  client: RedisHistoryClient
  /** Prefix of every history key. @default 'notify:history:' */
  keyPrefix?: string
  /**
   * PUBLISH each message from the same script that appends it, in mqemitter-redis's wire format,
   * so every instance sees a topic's ids in history order. Only right when the bus is
   * mqemitter-redis on this same Redis (without a pub/sub prefix); otherwise the caller publishes.
   * @default true
   */
  publish?: boolean
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
  /** Clock in ms, for ids (never below the topic's latest), timestamps and expiry. @default Date.now */
  now?: () => number
}

// mqemitter-redis's wire format: msgpack `{ id, msg }`, `id` unique for its de-duplication.
const PUBLISH_PACKET = `
redis.call('PUBLISH', ARGV[1], cmsgpack.pack({ id = ARGV[1] .. ' ' .. id, msg = { topic = ARGV[1], id = id, frame = frame } }))
`

// KEYS: stream, latest id. ARGV: channel, frame head, frame tail, size, ttl ms, now ms, meta ttl s, publish.
// The id is chosen here, from the caller's clock but never below the topic's latest, so the frame
// can carry it; each entry keeps the id before it (`p`), which is how a read detects a gap.
const APPEND = `
local last = redis.call('GET', KEYS[2])
if not last then
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
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], id, 'f', frame, 'p', prev)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], id, 'EX', ARGV[7])
if ARGV[8] == '1' then${PUBLISH_PACKET}end
return id
`

// KEYS: as APPEND's, for the hash slot only. ARGV: channel, id, frame. A message that keeps no
// history, put on the wire exactly as the append does.
const PUBLISH = `
local id = ARGV[2]
local frame = ARGV[3]${PUBLISH_PACKET}`

// KEYS: stream, latest id. ARGV: since, limit, oldest ms kept. Returns id, frame, id, frame…
// or nil for a gap.
const READ = `
local limit = tonumber(ARGV[2])
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', limit + 1)
if #entries == 0 then
  if redis.call('GET', KEYS[2]) == ARGV[1] then return {} end
  return false
end
if #entries > limit or entries[1][2][4] ~= ARGV[1] then return false end
local dash = string.find(entries[1][1], '-', 1, true)
if tonumber(string.sub(entries[1][1], 1, dash - 1)) < tonumber(ARGV[3]) then return false end
local out = {}
for _, entry in ipairs(entries) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][2]
end
return out
`

interface Script {
  source: string
  sha: string
}

function script (source: string): Script {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

const APPEND_SCRIPT = script(APPEND)
const READ_SCRIPT = script(READ)
const PUBLISH_SCRIPT = script(PUBLISH)

/**
 * History in Redis Streams, one stream per topic (`XADD … MAXLEN ~ size`, expiring `ttl` after
 * its last write) plus a small key with the topic's latest id. Appending and publishing are one
 * script, so on every instance a topic's messages arrive in the order of their ids.
 */
export class RedisHistoryStore implements HistoryStore {
  readonly appendPublishes: boolean
  readonly keyPrefix: string
  readonly #client: RedisHistoryClient
  readonly #metaTtl: number
  readonly #timeout: number
  readonly #now: () => number

  constructor (opts: RedisHistoryStoreOptions) {
    if (typeof opts?.client?.evalsha !== 'function' || typeof opts.client.eval !== 'function') {
      throw new InvalidOptionError('client must be an ioredis client')
    }
    const keyPrefix = opts.keyPrefix ?? 'notify:history:'
    if (typeof keyPrefix !== 'string') throw new InvalidOptionError('keyPrefix must be a string')
    if (opts.now !== undefined && typeof opts.now !== 'function') throw new InvalidOptionError('now must be a function')
    this.#client = opts.client
    this.keyPrefix = keyPrefix
    this.appendPublishes = opts.publish !== false
    this.#metaTtl = positiveInteger('metaTtl', opts.metaTtl, 86400)
    this.#timeout = positiveInteger('timeout', opts.timeout, 1000)
    this.#now = opts.now ?? Date.now
  }

  async append (topic: string, template: MessageTemplate, bounds: HistoryBounds): Promise<BusMessage> {
    const id = await this.#run(APPEND_SCRIPT, topic, [
      topic, template.head, template.tail, bounds.size, bounds.ttl * 1000, this.#now(),
      Math.max(this.#metaTtl, bounds.ttl), this.appendPublishes ? 1 : 0
    ]) as string
    return { topic, id, frame: messageFrame(template, id, Number(id.slice(0, id.indexOf('-')))) }
  }

  async read (topic: string, since: string, bounds: HistoryBounds, limit: number): Promise<BusMessage[] | null> {
    if (!isMessageId(since)) return null
    const reply = await this.#run(READ_SCRIPT, topic, [since, limit, this.#now() - bounds.ttl * 1000]) as string[] | null
    if (reply === null) return null
    const messages: BusMessage[] = []
    for (let i = 0; i < reply.length; i += 2) messages.push({ topic, id: reply[i], frame: reply[i + 1] })
    return messages
  }

  /**
   * PUBLISHes a message of a stream without history in the wire format of the append, for a
   * publisher that writes to the edges' Redis without a bus of its own.
   */
  async publish (message: BusMessage): Promise<void> {
    await this.#run(PUBLISH_SCRIPT, message.topic, [message.topic, message.id, message.frame])
  }

  async close (): Promise<void> {}

  /** Runs a script on a topic's two keys (one hash slot, for Redis Cluster), within the timeout. */
  async #run (script: Script, topic: string, args: Array<string | number>): Promise<unknown> {
    const stream = `${this.keyPrefix}{${topic}}`
    const call = async (): Promise<unknown> => {
      try {
        return await this.#client.evalsha(script.sha, 2, stream, `${stream}:last`, ...args)
      } catch (err) {
        if (!(err as Error).message?.startsWith('NOSCRIPT')) throw err
        return this.#client.eval(script.source, 2, stream, `${stream}:last`, ...args)
      }
    }
    let result: { value: unknown } | null
    try {
      result = await within(this.#timeout, call())
    } catch (err) {
      throw new BusUnavailableError(`history: ${(err as Error).message}`)
    }
    if (result === null) throw new BusUnavailableError(`history: no answer within ${this.#timeout} ms`)
    return result.value
  }
}
