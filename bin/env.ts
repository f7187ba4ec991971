// Reading settings from the environment, for the dedicated edge and the example app alike: every
// bad value throws a `SettingError` whose message is the one line an operator needs.
import type { NotifyEdgeRedisOptions } from '../plugins/index.js'

/** Development stand-ins for secrets, used (with a warning) only outside production. */
export const DEV_JWT_SECRET = 'notify-edge-development-secret-do-not-use-in-production'
export const DEV_API_KEY = 'notify-edge-development-api-key'

/** A missing or bad setting; its message names the variable and what it must be. */
export class SettingError extends Error {
  override name = 'SettingError'
}

export interface HostPort {
  host: string
  port: number
}

/** Reads `env`, collecting a warning for each development default that stands in for a secret. */
export class EnvReader {
  readonly warnings: string[] = []
  readonly production: boolean

  constructor (readonly env: NodeJS.ProcessEnv) {
    this.production = env.NODE_ENV === 'production'
  }

  /** The variable, or undefined when unset or empty. */
  get (name: string): string | undefined {
    const value = this.env[name]
    return value === undefined || value.trim() === '' ? undefined : value
  }

  /** An integer from `min` to `max`, or `fallback` when unset (undefined: leave the choice to the plugin's default). */
  integer (name: string, fallback: number, min: number, max: number): number
  integer (name: string, fallback: undefined, min: number, max: number): number | undefined
  integer (name: string, fallback: number | undefined, min: number, max: number): number | undefined {
    const raw = this.get(name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new SettingError(`${name} must be an integer from ${min} to ${max}, got ${raw}`)
    }
    return value
  }

  /** A secret of at least `minLength` characters, or outside production a development value with a warning. */
  secret (name: string, development: string, minLength: number): string {
    const value = this.get(name)
    if (value !== undefined) {
      if (value.length < minLength) throw new SettingError(`${name} must be at least ${minLength} characters, got ${value.length}`)
      return value
    }
    if (this.production) throw new SettingError(`${name} is required when NODE_ENV=production`)
    this.warnings.push(`${name} is not set: using a development value, never use it in production`)
    return development
  }

  /** The variable when it matches `pattern` (described by `form`), `fallback` when unset. */
  matching (name: string, fallback: string, pattern: RegExp, form: string): string {
    const value = this.get(name) ?? fallback
    if (!pattern.test(value)) throw new SettingError(`${name} must be ${form}, got ${value}`)
    return value
  }

  /** A comma-separated list, or undefined when unset. */
  list (name: string): string[] | undefined {
    const items = this.get(name)?.split(',').map((item) => item.trim()).filter((item) => item.length > 0)
    return items !== undefined && items.length > 0 ? items : undefined
  }

  /** A comma-separated `host:port` list, or undefined when unset. */
  hostPorts (name: string): HostPort[] | undefined {
    const raw = this.get(name)
    if (raw === undefined) return undefined
    return raw.split(',').map((entry) => {
      const match = /^\s*([^\s:]+):(\d{1,5})\s*$/.exec(entry)
      const port = Number(match?.[2])
      if (match === null || port < 1 || port > 65535) throw new SettingError(`${name} must be a comma-separated host:port list, got ${raw}`)
      return { host: match[1], port }
    })
  }

  /** Redis as SPEC sections 7 and 10 name it: REDIS_URL, REDIS_SENTINELS (+ REDIS_SENTINEL_NAME), REDIS_CLUSTER; at most one. */
  redis (): { url: string | undefined, sentinels: HostPort[] | undefined, sentinelName: string, cluster: HostPort[] | undefined } {
    const url = this.get('REDIS_URL')
    const sentinels = this.hostPorts('REDIS_SENTINELS')
    const cluster = this.hostPorts('REDIS_CLUSTER')
    if ([url, sentinels, cluster].filter((mode) => mode !== undefined).length > 1) {
      throw new SettingError('set one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER')
    }
    return { url, sentinels, sentinelName: this.get('REDIS_SENTINEL_NAME') ?? 'mymaster', cluster }
  }
}

/** The `redis` option of the edge for what `EnvReader.redis()` read. */
export function redisOption (redis: { url: string | undefined, sentinels: HostPort[] | undefined, sentinelName: string, cluster?: HostPort[] }): NotifyEdgeRedisOptions | undefined {
  if (redis.sentinels !== undefined) return { sentinels: redis.sentinels, name: redis.sentinelName }
  if (redis.cluster !== undefined) return { cluster: redis.cluster }
  return redis.url
}
