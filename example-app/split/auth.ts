import { generateKeyPairSync, randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance } from 'fastify'
import cors from '@fastify/cors'
import jwt from '@fastify/jwt'
import { loginRoute } from '../login.js'

/**
 * The demo auth service of the split example: `POST /auth/login` signs RS256 tokens with a key
 * made at start-up, and `GET /.well-known/jwks.json` publishes its public half for the edge and
 * the order service. No password: a demo.
 */
export async function buildAuthService (opts: { pageOrigin: string, logLevel: string }): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: opts.logLevel } })
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = randomUUID()
  const pem = (key: typeof publicKey, type: 'spki' | 'pkcs8'): string => key.export({ type, format: 'pem' }) as string
  await app.register(cors, { origin: opts.pageOrigin })
  await app.register(jwt, {
    secret: { private: pem(privateKey, 'pkcs8'), public: pem(publicKey, 'spki') },
    sign: { algorithm: 'RS256', kid },
    verify: { algorithms: ['RS256'] }
  })
  const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] }

  app.get('/.well-known/jwks.json', async () => jwks)
  await app.register(loginRoute)
  app.get('/health', async () => ({ status: 'ok' }))
  return app
}
