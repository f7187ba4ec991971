import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { notifyPublisher } from '../plugins/index.js'
import { STREAMS } from '../example-app/streams.js'
import { Client, claims, connect, signJwt } from './helpers.js'
import { serverProcess } from './example-process.js'
import { jwksServer, signingKey, signWith } from './jwks-server.js'
import { packedProject } from './packed.js'
import { sharedRedis } from './redis-server.js'
import { cleanUpKeys } from './split-helpers.js'

// The dedicated edge as operators get it: the package packed, installed into a fresh project,
// and its bin spawned from node_modules/.bin (SPEC section 11).

const run = promisify(execFile)
// Packing, installing and some twenty process starts: more than the default per-file limit when the machine is busy.
t.setTimeout(360_000)
const DEV_SECRET = 'notify-edge-development-secret-do-not-use-in-production'
const DEV_KEY = 'notify-edge-development-api-key'
const project = await packedProject()
const BIN = project.bin('fastify-notify-edge')

async function edge (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string> = {}) {
  return serverProcess(t, BIN, [], env, project.dir)
}

/** Runs the bin expecting it to refuse to start: its exit code and stderr. */
async function refusal (env: Record<string, string>): Promise<{ code: number | string, stderr: string }> {
  try {
    await run(BIN, [], { cwd: project.dir, env: { ...process.env, PORT: '0', ...env } })
  } catch (err) {
    const { code, signal, stderr } = err as { code: number, signal: string | null, stderr: string }
    return { code: code ?? signal, stderr }
  }
  throw new Error('the bin started')
}

async function ticketFor (http: string, token: string): Promise<number> {
  return (await fetch(`${http}/ws/ticket`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status
}

t.test('ships the bin, compiled, with the example streams it defaults to', async (t) => {
  const { stdout } = await run('tar', ['-tzf', project.tarball])
  t.match(stdout, 'package/dist/bin/fastify-notify-edge.js')
  t.match(stdout, 'package/dist/example-app/streams.js')
  t.notMatch(stdout, 'package/dist/example-app/app.js')
  t.notMatch(stdout, /package\/(test|bin|plugins)\/.*\.ts\n/)
})

t.test('runs on development defaults, warns about them, serves health, readiness, metrics and sockets, and drains on SIGTERM', async (t) => {
  const proc = await edge(t)
  for (const name of ['JWT_SECRET', 'PUBLISH_API_KEY', 'REDIS_URL']) t.match(proc.output(), `${name} is not set`)
  t.equal((await fetch(`${proc.http}/health`)).status, 200)
  t.same(await (await fetch(`${proc.http}/ready`)).json(), { ready: true })
  t.match(await (await fetch(`${proc.http}/metrics`)).text(), 'notify_edge_')

  const token = signJwt(claims('alice'), 'HS256', DEV_SECRET)
  const { client } = await connect(t, `${proc.ws}/ws?token=${token}`)
  await client.subscribe('order')
  const res = await fetch(`${proc.http}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': DEV_KEY },
    body: JSON.stringify({ stream: 'order', user: 'alice', data: { orderId: '1', status: 'placed' } })
  })
  t.equal(res.status, 202)
  t.match(await client.event('message'), { stream: 'order', data: { status: 'placed' } })

  const exit = proc.stop()
  t.equal(await client.closed, 1001, 'the socket is drained with 1001')
  t.equal(await exit, 0)
  t.match(proc.output(), 'draining')
})

t.test('refuses to start on a bad or missing setting with one line and no stack trace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'notify-edge-bin-'))
  await writeFile(join(dir, 'bad.json'), JSON.stringify([{ name: 'bad name', kind: 'public' }]))
  await writeFile(join(dir, 'object.json'), JSON.stringify({ streams: [] }))
  await writeFile(join(dir, 'broken.json'), '[{')
  const cases: Array<[Record<string, string>, string | RegExp]> = [
    [{ PORT: 'eighty' }, 'PORT must be an integer'],
    [{ NODE_ENV: 'production' }, 'JWT_SECRET is required when NODE_ENV=production'],
    [{ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }, 'PUBLISH_API_KEY is required'],
    [{ JWT_SECRET: 'short' }, 'JWT_SECRET must be at least 32 characters, got 5'],
    [{ PUBLISH_API_KEY: 'short-key' }, 'PUBLISH_API_KEY must be at least 16 characters, got 9'],
    [{ TOPIC_PREFIX: 'a.b' }, 'TOPIC_PREFIX must be 1 to 64 letters, digits, _ or -, got a.b'],
    [{ ADMIN_API_KEY: 'short-admin' }, 'ADMIN_API_KEY must be at least 16 characters, got 11'],
    [{ ADMIN_API_KEY: 'notify-edge-development-api-key' }, 'ADMIN_API_KEY must differ from PUBLISH_API_KEY'],
    [{ JWT_SECRET: 'x'.repeat(40), JWKS_URL: 'http://127.0.0.1:1/jwks.json' }, 'set one of JWT_SECRET, JWT_PUBLIC_KEY and JWKS_URL'],
    [{ JWKS_URL: 'http://127.0.0.1:1/jwks.json' }, 'JWT_ALGORITHM must be RS256 or ES256 with JWKS_URL'],
    [{ JWT_ALGORITHM: 'RS256' }, 'JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY or JWKS_URL'],
    [{ JWT_PUBLIC_KEY: join(dir, 'missing.pem'), JWT_ALGORITHM: 'RS256' }, 'JWT_PUBLIC_KEY is neither a PEM key nor a readable file'],
    [{ STREAMS_CONFIG: join(dir, 'missing.json') }, 'STREAMS_CONFIG'],
    [{ STREAMS_CONFIG: join(dir, 'broken.json') }, 'STREAMS_CONFIG'],
    [{ STREAMS_CONFIG: join(dir, 'object.json') }, 'must hold an array of streams'],
    [{ STREAMS_CONFIG: join(dir, 'bad.json') }, /STREAMS_CONFIG .*bad\.json: .*name/],
    [{ METHODS_CONFIG: join(dir, 'broken.json') }, 'METHODS_CONFIG'],
    [{ METHODS_CONFIG: join(dir, 'object.json') }, 'FST_NOTIFY_INVALID_OPTION'],
    [{ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_SENTINELS: '127.0.0.1:26379' }, 'set one of REDIS_URL'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of'],
    [{ REDIS_BUS_EMITTER: 'fast' }, 'REDIS_BUS_EMITTER must be mqemitter-redis or lean'],
    [{ REDIS_BUS_FLUSH_INTERVAL: '1.5' }, 'REDIS_BUS_FLUSH_INTERVAL must be an integer from 0 to 999'],
    [{ ALLOWED_ORIGINS: ' , ', TICKET_TTL: '0' }, 'TICKET_TTL must be an integer']
  ]
  // Side by side: each is a process start, seconds on a loaded machine.
  await Promise.all(cases.map(async ([env, message]) => {
    const { code, stderr } = await refusal(env)
    t.equal(code, 1, JSON.stringify(env))
    t.match(stderr, message)
    t.equal(stderr.trim().split('\n').length, 1, `one line: ${stderr}`)
    t.notMatch(stderr, /\n\s+at /)
  }))
})

t.test('declares the streams of STREAMS_CONFIG, JSON or module', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'notify-edge-bin-'))
  await writeFile(join(dir, 'streams.json'), JSON.stringify([{ name: 'alerts', kind: 'public' }]))
  await writeFile(join(dir, 'streams.mjs'), 'export const streams = [{ name: "vip", kind: "public", authorize: (p) => p.user === "vip" }]\n')
  const json = await edge(t, { STREAMS_CONFIG: join(dir, 'streams.json') })
  const token = signJwt(claims('alice'), 'HS256', DEV_SECRET)
  const { client } = await connect(t, `${json.ws}/ws?token=${token}`)
  t.same((await client.subscribe('alerts', 'order')).streams, ['alerts'])

  const mjs = await edge(t, { STREAMS_CONFIG: join(dir, 'streams.mjs') })
  const vip = (await connect(t, `${mjs.ws}/ws?token=${signJwt(claims('vip'), 'HS256', DEV_SECRET)}`)).client
  const other = (await connect(t, `${mjs.ws}/ws?token=${token}`)).client
  t.same((await vip.subscribe('vip')).streams, ['vip'])
  t.match(await other.request({ event: 'subscribe', streams: ['vip'] }, 'error'), { code: 'FORBIDDEN' })
})

t.test('verifies tokens against JWKS_URL', async (t) => {
  const key = signingKey('ES256')
  const auth = await jwksServer(t, [key])
  const proc = await edge(t, { JWKS_URL: auth.url, JWT_ALGORITHM: 'ES256' })
  t.equal(await ticketFor(proc.http, signWith(key, 'alice')), 200)
  t.equal(await ticketFor(proc.http, signJwt(claims('alice'), 'HS256', DEV_SECRET)), 401)
})

t.test('on REDIS_URL, a publisher in another process reaches its sockets, checked against its streams', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  cleanUpKeys(t, url, prefix)
  // On the lean emitter: a publisher's packets (mqemitter-redis's format) reach it all the same.
  const proc = await edge(t, { REDIS_URL: url, TOPIC_PREFIX: prefix, REDIS_BUS_EMITTER: 'lean', REDIS_BUS_FLUSH_INTERVAL: '5' })
  t.match(await (await fetch(`${proc.http}/health`)).json(), { status: 'ok', redis: { tickets: 'ready' } })
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyPublisher, { streams: STREAMS, redis: url, topicPrefix: prefix })
  await app.ready()
  const socket = new WebSocket(`${proc.ws}/ws?token=${signJwt(claims('alice'), 'HS256', DEV_SECRET)}`)
  const client = new Client(socket)
  t.teardown(() => client.close())
  await once(socket, 'open')
  await client.subscribe('reward')
  const { id } = await app.notify.publish({ stream: 'reward', user: 'alice', data: { points: 1 } }) as { id: string }
  t.match(await client.event('message'), { stream: 'reward', id })
})
