// The example app's settings, read from the environment (SPEC section 7).

export interface AppConfig {
  port: number
  host: string
  redisUrl: string | undefined
  /** Sentinels to ask for the master named `redisSentinelName` (SPEC section 10). */
  redisSentinels: HostPort[] | undefined
  redisSentinelName: string
  /** Seed nodes of a Redis Cluster (SPEC section 10). */
  redisCluster: HostPort[] | undefined
  jwtSecret: string
  publishApiKey: string
  ticketTtl: number
  allowedOrigins: string[] | undefined
  logLevel: string
  /** Pause between an order's status updates, in ms. */
  orderStepMs: number
}

export interface HostPort {
  host: string
  port: number
}

/** A comma-separated `host:port` list, or undefined when the variable is unset. */
function hostPorts (env: NodeJS.ProcessEnv, name: string): HostPort[] | undefined {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return undefined
  return raw.split(',').map((entry) => {
    const match = /^\s*([^\s:]+):(\d{1,5})\s*$/.exec(entry)
    const port = Number(match?.[2])
    if (match === null || port < 1 || port > 65535) throw new Error(`${name} must be a comma-separated host:port list, got ${raw}`)
    return { host: match[1], port }
  })
}

const DEV_JWT_SECRET = 'notify-edge-development-secret-do-not-use-in-production'
const DEV_API_KEY = 'notify-edge-development-api-key'

function integer (env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${raw}`)
  }
  return value
}

/** Reads the config; `warnings` lists development defaults that stood in for missing secrets. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): { config: AppConfig, warnings: string[] } {
  const production = env.NODE_ENV === 'production'
  const warnings: string[] = []
  function secret (name: string, fallback: string): string {
    const value = env[name]
    if (value !== undefined && value !== '') return value
    if (production) throw new Error(`${name} is required when NODE_ENV=production`)
    warnings.push(`${name} is not set: using a development value, never use it in production`)
    return fallback
  }
  const redisSentinels = hostPorts(env, 'REDIS_SENTINELS')
  const redisCluster = hostPorts(env, 'REDIS_CLUSTER')
  const redisModes = [env.REDIS_URL || undefined, redisSentinels, redisCluster].filter((mode) => mode !== undefined)
  if (redisModes.length > 1) throw new Error('set one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER')
  const origins = env.ALLOWED_ORIGINS?.split(',').map((o) => o.trim()).filter((o) => o.length > 0)
  return {
    config: {
      port: integer(env, 'PORT', 3000, 0, 65535),
      host: env.HOST || '127.0.0.1',
      redisUrl: env.REDIS_URL || undefined,
      redisSentinels,
      redisSentinelName: env.REDIS_SENTINEL_NAME || 'mymaster',
      redisCluster,
      jwtSecret: secret('JWT_SECRET', DEV_JWT_SECRET),
      publishApiKey: secret('PUBLISH_API_KEY', DEV_API_KEY),
      ticketTtl: integer(env, 'TICKET_TTL', 30, 1, 3600),
      allowedOrigins: origins !== undefined && origins.length > 0 ? origins : undefined,
      logLevel: env.LOG_LEVEL || 'info',
      orderStepMs: integer(env, 'ORDER_STEP_MS', 1000, 0, 60000)
    },
    warnings
  }
}
