// A real auth service's key set for tests: a Fastify server on a loopback port serving
// /.well-known/jwks.json from keys the test adds and retires, counting fetches.

import { generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto'
import Fastify from 'fastify'
import { urls } from './helpers.js'

type Test = { teardown: (fn: () => unknown) => void }

export interface SigningKey { kid: string, alg: 'RS256' | 'ES256', privateKey: KeyObject, jwk: Record<string, unknown> }

export function signingKey (alg: 'RS256' | 'ES256' = 'RS256', kid = randomUUID()): SigningKey {
  const { publicKey, privateKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { kid, alg, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' } }
}

/** A JWT for `sub` signed by `key`, with its `kid` in the header (`alg` may be overridden to test pinning). */
export function signWith (key: SigningKey, sub: string, seconds = 3600, header: Record<string, unknown> = {}): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const input = `${part({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header })}.${part({ sub, iat: now, exp: now + seconds })}`
  const signature = key.alg === 'RS256'
    ? sign('sha256', Buffer.from(input), key.privateKey)
    : sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
  return `${input}.${signature.toString('base64url')}`
}

export interface JwksServer {
  url: string
  keys: Array<Record<string, unknown>>
  /** Requests served so far. */
  fetches: number
  /** 'up' answers the set, 'failing' answers 503, 'frozen' never answers. */
  mode: 'up' | 'failing' | 'frozen'
  close (): Promise<void>
}

export async function jwksServer (t: Test, keys: SigningKey[]): Promise<JwksServer> {
  const app = Fastify({ logger: false, forceCloseConnections: true })
  const state: JwksServer = {
    url: '',
    keys: keys.map((key) => key.jwk),
    fetches: 0,
    mode: 'up',
    close: () => app.close()
  }
  app.get('/.well-known/jwks.json', (_request, reply) => {
    state.fetches++
    if (state.mode === 'failing') reply.code(503).send({ message: 'down' })
    else if (state.mode === 'up') reply.send({ keys: state.keys })
    // frozen: no answer at all
  })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  state.url = `${urls(app).http}/.well-known/jwks.json`
  return state
}
