import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import t from 'tap'
import { build, claims, handshake, requestTicket, signJwt, type Edge } from './helpers.js'

function generate (alg: 'RS256' | 'ES256'): { privateKey: KeyObject, publicPem: string } {
  const { privateKey, publicKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

// RSA key generation is slow: two pairs per algorithm, made once (the second signs forgeries).
const KEYS = { RS256: [generate('RS256'), generate('RS256')], ES256: [generate('ES256'), generate('ES256')] }
const keyPair = (alg: 'RS256' | 'ES256', n = 0): { privateKey: KeyObject, publicPem: string } => KEYS[alg][n]

/** Whether `jwt` is accepted, both by POST /ws/ticket and by the handshake. */
async function accepted (edge: Edge, jwt: string): Promise<[number, number]> {
  const issued = await requestTicket(edge.http, { authorization: `Bearer ${jwt}` })
  const opened = await handshake(`${edge.ws}/ws?token=${jwt}`)
  return [issued.status, opened.status]
}

for (const alg of ['RS256', 'ES256'] as const) {
  t.test(`verifies ${alg} tokens with a public key and pins the algorithm`, async (t) => {
    const { privateKey, publicPem } = keyPair(alg)
    const edge = await build(t, { jwt: { publicKey: publicPem, algorithm: alg } })
    const other = alg === 'RS256' ? 'ES256' : 'RS256'

    t.same(await accepted(edge, signJwt(claims('alice'), alg, privateKey)), [200, 101], 'signed with the private key')
    t.same(await accepted(edge, signJwt(claims('alice', -5), alg, privateKey)), [401, 401], 'expired')
    t.same(await accepted(edge, signJwt(claims('alice'), alg, keyPair(alg, 1).privateKey)), [401, 401], 'signed with another key')
    t.same(await accepted(edge, signJwt(claims('alice'), other, keyPair(other).privateKey)), [401, 401], `an ${other} token`)
    t.same(await accepted(edge, signJwt(claims('alice'), 'HS256', publicPem)), [401, 401], 'HS256 keyed with the public key (key confusion)')
    t.same(await accepted(edge, signJwt(claims('alice'), 'none')), [401, 401], 'alg none')
  })
}

t.test('accepts the public key as a Buffer', async (t) => {
  const { privateKey, publicPem } = keyPair('ES256')
  const edge = await build(t, { jwt: { publicKey: Buffer.from(publicPem), algorithm: 'ES256' } })
  t.same(await accepted(edge, signJwt(claims('bob'), 'ES256', privateKey)), [200, 101])
})

t.test('an HS256 setup accepts only HS256 tokens signed with its secret', async (t) => {
  const edge = await build(t)
  const { privateKey } = keyPair('RS256')
  t.same(await accepted(edge, signJwt(claims('alice'), 'HS256')), [200, 101])
  t.same(await accepted(edge, signJwt(claims('alice'), 'RS256', privateKey)), [401, 401], 'RS256')
  t.same(await accepted(edge, signJwt(claims('alice'), 'none')), [401, 401], 'alg none')
})

t.test('app.jwt.sign() puts an exp in every token: one hour by default, jwt.expiresIn otherwise', async (t) => {
  const lifetime = (edge: Edge, token: string): number => {
    const { iat, exp } = edge.app.jwt.decode<{ iat: number, exp: number }>(token) as { iat: number, exp: number }
    return exp - iat
  }
  const edge = await build(t)
  const token = edge.app.jwt.sign({ sub: 'alice' })
  t.equal(lifetime(edge, token), 3600)
  t.same(await accepted(edge, token), [200, 101], 'a token signed without expiresIn is accepted')
  t.equal(lifetime(edge, edge.app.jwt.sign({ sub: 'alice' }, { expiresIn: 60 })), 60, 'a call\'s own expiresIn wins')
  const exp = Math.floor(Date.now() / 1000) - 60
  const expired = edge.app.jwt.sign({ sub: 'alice', exp })
  t.equal(edge.app.jwt.decode<{ exp: number }>(expired)?.exp, exp, 'a payload\'s own exp wins')
  t.same(await accepted(edge, expired), [401, 401])
  const viaCallback = await new Promise<string>((resolve, reject) => {
    edge.app.jwt.sign({ sub: 'alice' }, (err: Error | null, signed?: string) => err === null ? resolve(signed as string) : reject(err))
  })
  t.equal(lifetime(edge, viaCallback), 3600, 'the callback form too')
  const withOptions = await new Promise<string>((resolve, reject) => {
    edge.app.jwt.sign({ sub: 'alice' }, { expiresIn: '2m' }, (err: Error | null, signed?: string) => err === null ? resolve(signed as string) : reject(err))
  })
  t.equal(lifetime(edge, withOptions), 120)

  const shorter = await build(t, { jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256', expiresIn: '30m' } })
  t.equal(lifetime(shorter, shorter.app.jwt.sign({ sub: 'alice' })), 1800)
  const seconds = await build(t, { jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256', expiresIn: 90 } })
  t.equal(lifetime(seconds, seconds.app.jwt.sign({ sub: 'alice' })), 90)
})
