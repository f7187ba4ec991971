// The dedicated edge's settings (SPEC sections 7 and 11), from the environment.
import { readFile } from 'node:fs/promises'
import { extname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { NotifyEdgeRedisOptions, NotifyJwtOptions, RedisEmitterKind, RpcMethod, StreamDefinition } from '../plugins/index.js'
import { MIN_KEY_LENGTH } from '../plugins/api-key.js'
import { declareStreams } from '../plugins/declarations.js'
import { MIN_SECRET_LENGTH } from '../plugins/jwt.js'
import { TOPIC_PREFIX } from '../plugins/topics.js'
import { DEV_API_KEY, DEV_JWT_SECRET, EnvReader, SettingError, redisOption } from './env.js'

export interface EdgeConfig {
  port: number
  host: string
  redis: NotifyEdgeRedisOptions | undefined
  /** What carries the bus on one Redis: mqemitter-redis, or the lean emitter. */
  redisEmitter: RedisEmitterKind
  /** The bus's write coalescing on Redis, in ms; undefined: the plugin's default. */
  busFlushInterval: number | undefined
  jwt: NotifyJwtOptions
  publishApiKey: string
  ticketTtl: number
  allowedOrigins: string[] | undefined
  logLevel: string
  topicPrefix: string
  /** Path of the streams module or JSON file; undefined: the example's streams. */
  streamsConfig: string | undefined
  /** ADMIN_API_KEY: the admin API is off without it. */
  adminApiKey: string | undefined
  /** MAX_CONNECTIONS, MAX_HANDSHAKES_PER_SECOND, MAX_CONNECTIONS_PER_USER; undefined: unlimited. */
  limits: { maxConnections?: number, maxHandshakesPerSecond?: number, maxConnectionsPerUser?: number }
  /** Path of the RPC methods module or JSON file (SPEC section 13); undefined: none. */
  methodsConfig: string | undefined
  /** Shared with the backends that serve methods and hooks (`notifyBackend`); needed when any is a URL. */
  callerSecret: string | undefined
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

/** JWT_SECRET (HS256), JWT_PUBLIC_KEY (PEM or a path to one) or JWKS_URL; the latter two with JWT_ALGORITHM. */
async function jwtSetting (read: EnvReader): Promise<NotifyJwtOptions> {
  const given = ['JWT_SECRET', 'JWT_PUBLIC_KEY', 'JWKS_URL'].filter((name) => read.get(name) !== undefined)
  if (given.length > 1) throw new SettingError(`set one of JWT_SECRET, JWT_PUBLIC_KEY and JWKS_URL, not ${given.join(' and ')}`)
  const algorithm = read.get('JWT_ALGORITHM')
  if (given.length === 0 || given[0] === 'JWT_SECRET') {
    if (algorithm !== undefined && algorithm !== 'HS256') throw new SettingError(`JWT_ALGORITHM=${algorithm} needs JWT_PUBLIC_KEY or JWKS_URL`)
    return { secret: read.secret('JWT_SECRET', DEV_JWT_SECRET, MIN_SECRET_LENGTH) }
  }
  if (algorithm !== 'RS256' && algorithm !== 'ES256') {
    throw new SettingError(`JWT_ALGORITHM must be RS256 or ES256 with ${given[0]}, got ${algorithm ?? 'nothing'}`)
  }
  const jwksUrl = read.get('JWKS_URL')
  if (jwksUrl !== undefined) return { jwksUrl, algorithm }
  let publicKey = read.get('JWT_PUBLIC_KEY')!.replaceAll('\\n', '\n')
  if (!publicKey.includes('-----BEGIN')) {
    try {
      publicKey = await readFile(publicKey, 'utf8')
    } catch (err) {
      throw new SettingError(`JWT_PUBLIC_KEY is neither a PEM key nor a readable file: ${(err as Error).message}`)
    }
  }
  return { publicKey, algorithm }
}

const REDIS_EMITTERS: readonly RedisEmitterKind[] = ['mqemitter-redis', 'lean']

function redisEmitterSetting (read: EnvReader): RedisEmitterKind {
  const value = read.get('REDIS_BUS_EMITTER') ?? 'mqemitter-redis'
  if (!REDIS_EMITTERS.includes(value as RedisEmitterKind)) throw new SettingError(`REDIS_BUS_EMITTER must be mqemitter-redis or lean, got ${value}`)
  return value as RedisEmitterKind
}

/** Reads the edge's settings; `warnings` lists development defaults that stood in for secrets. */
export async function loadEdgeConfig (env: NodeJS.ProcessEnv = process.env): Promise<{ config: EdgeConfig, warnings: string[] }> {
  const read = new EnvReader(env)
  const redis = read.redis()
  const logLevel = read.get('LOG_LEVEL') ?? 'info'
  if (!LOG_LEVELS.has(logLevel)) throw new SettingError(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}, got ${logLevel}`)
  const config: EdgeConfig = {
    port: read.integer('PORT', 3000, 0, 65535),
    host: read.get('HOST') ?? '127.0.0.1',
    redis: redisOption(redis),
    redisEmitter: redisEmitterSetting(read),
    busFlushInterval: read.integer('REDIS_BUS_FLUSH_INTERVAL', undefined, 0, 999),
    jwt: await jwtSetting(read),
    publishApiKey: read.secret('PUBLISH_API_KEY', DEV_API_KEY, MIN_KEY_LENGTH),
    ticketTtl: read.integer('TICKET_TTL', 30, 1, 3600),
    allowedOrigins: read.list('ALLOWED_ORIGINS'),
    logLevel,
    topicPrefix: read.matching('TOPIC_PREFIX', 'notify', TOPIC_PREFIX, '1 to 64 letters, digits, _ or -'),
    streamsConfig: read.get('STREAMS_CONFIG'),
    adminApiKey: read.get('ADMIN_API_KEY'),
    limits: {
      maxConnections: read.integer('MAX_CONNECTIONS', undefined, 1, 10_000_000),
      maxHandshakesPerSecond: read.integer('MAX_HANDSHAKES_PER_SECOND', undefined, 1, 1_000_000),
      maxConnectionsPerUser: read.integer('MAX_CONNECTIONS_PER_USER', undefined, 1, 1_000_000)
    },
    methodsConfig: read.get('METHODS_CONFIG'),
    callerSecret: read.get('CALLER_SECRET')
  }
  if (config.adminApiKey !== undefined && config.adminApiKey.length < MIN_KEY_LENGTH) {
    throw new SettingError(`ADMIN_API_KEY must be at least ${MIN_KEY_LENGTH} characters, got ${config.adminApiKey.length}`)
  }
  if (config.adminApiKey === config.publishApiKey) throw new SettingError('ADMIN_API_KEY must differ from PUBLISH_API_KEY')
  if (config.redis === undefined) read.warnings.push('REDIS_URL is not set: in-process bus and memory stores, one instance only')
  return { config, warnings: read.warnings }
}

/**
 * What the file at `path` holds: a JSON file's value, or a module's default export or the export
 * named `name` (or its upper-case form); `setting` names the variable in errors.
 */
async function loadSetting (setting: string, path: string, name: string): Promise<unknown> {
  const file = resolve(path)
  try {
    if (extname(file) === '.json') return JSON.parse(await readFile(file, 'utf8'))
    const module = await import(pathToFileURL(file).href) as Record<string, unknown>
    return module.default ?? module[name] ?? module[name.toUpperCase()]
  } catch (err) {
    throw new SettingError(`${setting} ${path}: ${(err as Error).message.split('\n')[0]}`)
  }
}

/**
 * The streams that STREAMS_CONFIG names: a JSON file (an array), or a module whose default
 * export, `streams` or `STREAMS` is the array (a module may carry `authorize` hooks). Unset: the
 * example's streams. The definitions themselves are checked when the edge registers them.
 */
export async function loadStreams (path: string | undefined): Promise<readonly StreamDefinition[]> {
  if (path === undefined) return (await import('../example-app/streams.js')).STREAMS
  const streams = await loadSetting('STREAMS_CONFIG', path, 'streams')
  if (!Array.isArray(streams)) throw new SettingError(`STREAMS_CONFIG ${path} must hold an array of streams (default export, \`streams\` or \`STREAMS\`)`)
  try {
    declareStreams(streams as readonly StreamDefinition[], 'notify')
  } catch (err) {
    throw new SettingError(`STREAMS_CONFIG ${path}: ${(err as Error).message}`)
  }
  return streams as readonly StreamDefinition[]
}

/**
 * The RPC methods METHODS_CONFIG names (a JSON file or a module whose default export, `methods`
 * or `METHODS` is the object of methods by name); unset: none. Checked when the edge registers them.
 */
export async function loadMethods (path: string | undefined): Promise<Record<string, RpcMethod> | undefined> {
  if (path === undefined) return undefined
  const methods = await loadSetting('METHODS_CONFIG', path, 'methods')
  if (methods === null || typeof methods !== 'object' || Array.isArray(methods)) throw new SettingError(`METHODS_CONFIG ${path} must hold an object of methods by name`)
  return methods as Record<string, RpcMethod>
}
