// Redis for tests. `redisServer(t)` spawns a private redis-server that the test may stop and
// restart; `sharedRedis(t)` uses REDIS_URL (or 127.0.0.1:6379) with a key prefix of its own,
// for tests that need no isolation. The shared Redis is never stopped, flushed or reconfigured.

import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, Socket } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'

type Test = { teardown: (fn: () => unknown) => void }

export interface RedisServer {
  url: string
  port: number
  /** Kills the server (SIGKILL, as a crash would) and waits for it to exit. */
  stop (): Promise<void>
  /** Starts it again on the same port and waits until it accepts connections. */
  start (): Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open but nothing is answered. */
  pause (): void
  /** Lets a paused server go on (SIGCONT). */
  resume (): void
}

export interface SharedRedis {
  url: string
  /** Unique to this test file and run: use it for topic and key prefixes. */
  prefix: string
}

const READY = 'Ready to accept connections'
const START_TIMEOUT = 10_000
const MISSING = 'redis-server is not on PATH: install Redis 7 (e.g. `apt-get install redis-server`) ' +
  'or set REDIS_URL to a reachable Redis for the tests that can share one'

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

const running = new Set<ChildProcess>()
// A test process that dies without its teardown must not leave servers behind.
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

/**
 * Spawns redis-server on `port` with `args` before the port (a config file must come first);
 * resolves once it logs `ready`, rejects if it exits first.
 */
export function spawnRedis (port: number, args: string[] = [], ready = READY): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // Its own working directory: a replica writes the RDB of its full sync there (dump.rdb).
    const dir = mkdtempSync(join(tmpdir(), 'notify-redis-'))
    const child = spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe']
    })
    running.add(child)
    child.once('exit', () => {
      running.delete(child)
      rmSync(dir, { recursive: true, force: true })
    })
    let output = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`redis-server on port ${port} not ready within ${START_TIMEOUT} ms:\n${output}`))
    }, START_TIMEOUT)
    const fail = (err: Error): void => {
      clearTimeout(timer)
      reject((err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(MISSING) : err)
    }
    child.once('error', fail)
    child.once('exit', (code, signal) => fail(new Error(`redis-server on port ${port} exited (${code ?? signal}):\n${output}`)))
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      output += chunk
      if (!output.includes(ready)) return
      clearTimeout(timer)
      child.removeAllListeners('exit')
      child.removeAllListeners('error')
      child.stdout!.removeAllListeners('data').resume()
      child.stderr!.resume()
      resolve(child)
    })
  })
}

export async function kill (child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
}

/** A private redis-server on a free port, started with `args` (e.g. `--replicaof`), killed when the test ends. */
export async function redisServer (t: Test, args: string[] = []): Promise<RedisServer> {
  let child: ChildProcess | null = null
  let port = 0
  // The free port may be taken between probing and binding: try a few.
  for (let attempt = 1; child === null; attempt++) {
    port = await freePort()
    try {
      child = await spawnRedis(port, args)
    } catch (err) {
      if (attempt >= 3 || (err as Error).message === MISSING) throw err
    }
  }
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop () {
      if (child !== null) await kill(child)
      child = null
    },
    async start () {
      if (child !== null) return
      child = await spawnRedis(port, args)
    },
    pause () { child?.kill('SIGSTOP') },
    resume () { child?.kill('SIGCONT') }
  }
  t.teardown(() => server.stop())
  return server
}

/** Whether a Redis answers PING at `url` within a second. */
async function reachable (url: string): Promise<boolean> {
  const { hostname, port } = new URL(url)
  const socket = new Socket()
  socket.setTimeout(1000)
  try {
    socket.connect(Number(port || 6379), hostname || '127.0.0.1')
    await once(socket, 'connect')
    socket.write('PING\r\n')
    const [data] = await once(socket, 'data') as [Buffer]
    // -NOAUTH also proves a Redis is there; the client will authenticate from the URL.
    return data.toString().startsWith('+PONG') || data.toString().startsWith('-NOAUTH')
  } catch {
    return false
  } finally {
    socket.destroy()
  }
}

/**
 * REDIS_URL, else the local Redis at 127.0.0.1:6379, else a private redis-server; with a prefix
 * unique to the calling file and run so parallel test files never see each other's keys or topics.
 */
export async function sharedRedis (t: Test, file = process.argv[1] ?? 'test'): Promise<SharedRedis> {
  const prefix = `t-${basename(file).replace(/\W+/g, '-').slice(0, 30)}-${randomBytes(4).toString('hex')}`
  const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
  if (await reachable(url)) return { url, prefix }
  try {
    return { url: (await redisServer(t)).url, prefix }
  } catch (err) {
    throw new Error(`no Redis at ${url} and ${(err as Error).message}`)
  }
}

/** Resolves once `check()` holds, checking every 20 ms; for state only Redis can be asked about. */
export async function until (what: string, check: () => Promise<boolean> | boolean, timeout = 5000): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Keys under `prefix`, by SCAN: the shared Redis may hold many others. */
export async function scanKeys (redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys.sort()
}

/** Lets time pass in Redis by taking `seconds` off every key's remaining TTL under `prefix`. */
export async function elapseKeys (redis: Redis, prefix: string, seconds: number): Promise<void> {
  for (const key of await scanKeys(redis, prefix)) {
    const left = await redis.pttl(key) - seconds * 1000
    if (left > 0) await redis.pexpire(key, left)
    else await redis.del(key)
  }
}
