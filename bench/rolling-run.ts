// `npm run bench:rolling`: the rolling-deploy soak of issue 24 at full size. Three example-app
// processes (dist/, so `npm run build` first) on one Redis, SDK clients spread over them, keyed
// publishes; each process is SIGTERMed (it drains with 1001) and a new one started, in turn.
// Prints the counts as JSON. Options: --clients N (3000), --rate N (200 msg/s), --instances N (3),
// REDIS_URL (default: a private redis-server on a free port, stopped at the end: the example app
// uses the default topic prefix, which must not meet anyone else's keys).
import { spawn } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runRolling, type RollingInstance } from './rolling.js'
import { machine } from './lib/machine.js'

const SECRET = randomBytes(32).toString('hex')
const API_KEY = randomBytes(16).toString('hex')
// From node_modules/.cache/notify-edge-bench/bench/ up to the project's own dist/.
const SERVER = fileURLToPath(new URL('../../../../dist/example-app/server.js', import.meta.url))

const { values } = parseArgs({ options: { clients: { type: 'string', default: '3000' }, rate: { type: 'string', default: '200' }, instances: { type: 'string', default: '3' }, 'public-every': { type: 'string', default: '2' } } })

async function privateRedis (): Promise<{ url: string, stop: () => void }> {
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  probe.close()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  child.stdout!.setEncoding('utf8')
  await new Promise<void>((resolve, reject) => {
    child.once('exit', () => reject(new Error('redis-server exited')))
    child.stdout!.on('data', (chunk: string) => { if (chunk.includes('Ready to accept connections')) resolve() })
  })
  child.stdout!.removeAllListeners('data').resume()
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') }
}

const redis = process.env.REDIS_URL === undefined ? await privateRedis() : { url: process.env.REDIS_URL, stop: () => {} }
const redisUrl = redis.url

/** An HS256 JWT for `sub`, valid for an hour: what the example app's JWT_SECRET verifies. */
function jwt (sub: string): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`
}

async function start (): Promise<RollingInstance> {
  const child = spawn(process.execPath, ['--no-allocation-site-pretenuring', SERVER], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', REDIS_URL: redisUrl, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = once(child, 'exit')
  let output = ''
  child.stdout!.setEncoding('utf8')
  const port = await new Promise<number>((resolve, reject) => {
    exited.then(() => reject(new Error(`example app exited:\n${output}`)), () => {})
    child.stdout!.on('data', (chunk: string) => {
      output += chunk
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match !== null) resolve(Number(match[1]))
    })
  })
  child.stdout!.removeAllListeners('data').resume()
  return {
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await exited
    }
  }
}

const run = machine()
const result = await runRolling({
  clients: Number(values.clients),
  rate: Number(values.rate),
  instances: Number(values.instances),
  publicEvery: Number(values['public-every']),
  apiKey: API_KEY,
  token: jwt,
  start,
  drainJitterMs: 3000
}).finally(() => redis.stop())
console.log(JSON.stringify({ scenario: 'rolling', ...result, machine: run.finish() }, null, 2))
