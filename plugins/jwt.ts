import fp from 'fastify-plugin'
import jwt, { type JWT, type SignOptions, type SignPayloadType } from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from './errors.js'
import { JwksKeySet, type JwksAlgorithm, type JwksOptions } from './jwks.js'

/**
 * How JWTs are verified: an HS256 secret, an RS256/ES256 public key, or an auth service's JWKS.
 * With a secret, `app.jwt.sign()` also signs, and puts an `exp` in every token (the edge refuses
 * tokens without).
 */
export type NotifyJwtOptions =
  | {
    secret: string
    /** Lifetime of the tokens `app.jwt.sign()` makes without its own `expiresIn`: seconds, or `'30m'`, `'1h'`, `'7d'`. @default '1h' */
    expiresIn?: number | string
  }
  | { publicKey: string | Buffer, algorithm: 'RS256' | 'ES256' }
  | { jwksUrl: string, algorithm: JwksAlgorithm, jwks?: Omit<JwksOptions, 'url' | 'algorithm'> }

export const MIN_SECRET_LENGTH = 32
const DURATION = /^[1-9][0-9]*(s|m|h|d)$/

function expiresIn (value: unknown): number | string {
  if (value === undefined) return '1h'
  if (typeof value === 'string' && DURATION.test(value)) return value
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value
  throw new InvalidOptionError('jwt.expiresIn must be a positive number of seconds or a duration such as \'30m\', \'1h\', \'7d\'')
}

/**
 * `app.jwt.sign()` with a default lifetime, since the edge refuses tokens without `exp`. Not as
 * @fastify/jwt's `sign.expiresIn`, which would replace an `exp` the payload sets itself.
 */
function signWithExpiry (jwt: JWT, lifetime: number | string): void {
  type Sign = (payload: SignPayloadType, options?: Partial<SignOptions>, callback?: unknown) => string | undefined
  const sign = jwt.sign.bind(jwt) as Sign
  const withExpiry: Sign = (payload, options, callback) => {
    if (typeof options === 'function') return withExpiry(payload, {}, options)
    const own = (typeof payload === 'object' && 'exp' in payload) || options?.expiresIn !== undefined
    const signOptions = own ? options : { ...options, expiresIn: lifetime }
    return callback === undefined ? sign(payload, signOptions) : sign(payload, signOptions ?? {}, callback)
  }
  jwt.sign = withExpiry as JWT['sign']
}

function jwtPluginOptions (app: FastifyInstance, opts: NotifyJwtOptions): Parameters<typeof jwt>[1] {
  if ('jwksUrl' in opts) return jwksPluginOptions(app, opts)
  if ('secret' in opts) {
    if (typeof opts.secret !== 'string' || opts.secret.length < MIN_SECRET_LENGTH) {
      throw new InvalidOptionError(`jwt.secret must be at least ${MIN_SECRET_LENGTH} characters`)
    }
    return { secret: opts.secret, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'] } }
  }
  if ('expiresIn' in opts) throw new InvalidOptionError('jwt.expiresIn needs jwt.secret: with a public key the edge only verifies')
  if (opts.algorithm !== 'RS256' && opts.algorithm !== 'ES256') {
    throw new InvalidOptionError('jwt.algorithm must be RS256 or ES256')
  }
  if (typeof opts.publicKey !== 'string' && !Buffer.isBuffer(opts.publicKey)) {
    throw new InvalidOptionError('jwt.publicKey must be a PEM string or Buffer')
  }
  return { secret: { public: opts.publicKey }, verify: { algorithms: [opts.algorithm] } }
}

/** @fastify/jwt on a JWKS: the key comes from the token's `kid`, the algorithm is pinned. */
function jwksPluginOptions (app: FastifyInstance, opts: Extract<NotifyJwtOptions, { jwksUrl: string }>): Parameters<typeof jwt>[1] {
  const keySet = new JwksKeySet({ ...opts.jwks, url: opts.jwksUrl, algorithm: opts.algorithm }, app.log)
  // Without the auth service the edge still starts: a token is checked once its key can be had.
  app.addHook('onReady', async () => {
    await keySet.refresh().catch(() => {})
  })
  // @fastify/jwt calls it (decoded) from app.jwt.verify, (request, decoded, callback) from request.jwtVerify.
  const key = (first: unknown, second: unknown): Promise<string> => {
    const decoded = (typeof second === 'object' && second !== null ? second : first) as { header: { alg?: unknown, kid?: unknown } }
    return keySet.key(decoded.header)
  }
  return { secret: key as never, verify: { algorithms: [opts.algorithm] } }
}

/**
 * `@fastify/jwt` with the algorithm pinned, from a secret, a public key or an auth service's
 * JWKS: the edge's token verification, for a service that verifies the same tokens.
 */
async function fastifyNotifyJwt (app: FastifyInstance, opts: NotifyJwtOptions): Promise<void> {
  if (opts === null || typeof opts !== 'object') throw new InvalidOptionError('jwt must be { secret }, { publicKey, algorithm } or { jwksUrl, algorithm }')
  const lifetime = 'secret' in opts ? expiresIn(opts.expiresIn) : null
  await app.register(jwt, jwtPluginOptions(app, opts))
  if (lifetime !== null) signWithExpiry(app.jwt, lifetime)
}

export const notifyJwt = fp(fastifyNotifyJwt, { fastify: '5.x', name: 'notify-edge-jwt' })
export default notifyJwt
