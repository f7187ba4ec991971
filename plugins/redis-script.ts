import { createHash } from 'node:crypto'
import { within } from './util.js'

// Lua scripts run by EVALSHA, loaded with EVAL the first time a Redis (or a restarted one) lacks
// them. Shared by the Redis stores; typed by the two calls made, so ioredis 5 and 6 both fit.

/** The two commands a Redis store sends: any ioredis client fits. */
export interface RedisScriptClient {
  evalsha (sha: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
  eval (script: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>
}

export interface RedisScript {
  readonly source: string
  readonly sha: string
}

export function redisScript (source: string): RedisScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') }
}

/** Runs `script` on `keys` with `args`: EVALSHA, or EVAL when Redis does not hold it yet. */
export async function runScript (client: RedisScriptClient, script: RedisScript, keys: string[], args: Array<string | number>): Promise<unknown> {
  try {
    return await client.evalsha(script.sha, keys.length, ...keys, ...args)
  } catch (err) {
    if (!(err as Error).message?.startsWith('NOSCRIPT')) throw err
    return client.eval(script.source, keys.length, ...keys, ...args)
  }
}

/** `runScript` bounded by `timeout` ms: its answer, or a rejection saying Redis did not answer in time. */
export async function runScriptWithin (client: RedisScriptClient, timeout: number, script: RedisScript, keys: string[], args: Array<string | number>): Promise<unknown> {
  const done = await within(timeout, runScript(client, script, keys, args))
  if (done === null) throw new Error(`Redis did not answer within ${timeout} ms`)
  return done.value
}
