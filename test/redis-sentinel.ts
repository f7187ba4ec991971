// Redis with Sentinel for tests: a master, a replica and three sentinels, each a real process on a
// free port, killed when the test ends. Failover timings are short so a test sees one in seconds.

import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, kill, redisServer, spawnRedis, until, type RedisServer } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

export interface SentinelSetup {
  /** The monitored master's name, as ioredis's `name` option wants it. */
  name: string
  /** The sentinels, as ioredis's `sentinels` option wants them. */
  sentinels: Array<{ host: string, port: number }>
  /** `host:port,host:port,…`, as `REDIS_SENTINELS` wants them. */
  sentinelList: string
  master: RedisServer
  replica: RedisServer
  /** Resolves once every sentinel names `port` as the master. */
  masterIs (port: number, timeout?: number): Promise<void>
}

const NAME = 'mymaster'
// Sentinel's own readiness line: it monitors the master from then on.
const MONITORING = '+monitor master'

async function sentinelCommand (port: number, ...args: string[]): Promise<unknown> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    return await client.call('SENTINEL', ...args)
  } finally {
    client.disconnect()
  }
}

/** Master, replica and three sentinels (quorum 2, master down after 1 s), ready for a failover. */
export async function redisSentinel (t: Test): Promise<SentinelSetup> {
  const master = await redisServer(t)
  const replica = await redisServer(t, ['--replicaof', '127.0.0.1', String(master.port)])
  const dir = await mkdtemp(join(tmpdir(), 'notify-sentinel-'))
  const children: ChildProcess[] = []
  t.teardown(async () => {
    await Promise.all(children.map(kill))
    await rm(dir, { recursive: true, force: true })
  })
  const ports: number[] = []
  for (let n = 0; n < 3; n++) {
    // Sentinel rewrites its config file, so each gets a writable one of its own.
    const file = join(dir, `sentinel-${n}.conf`)
    await writeFile(file, [
      `sentinel monitor ${NAME} 127.0.0.1 ${master.port} 2`,
      `sentinel down-after-milliseconds ${NAME} 1000`,
      `sentinel failover-timeout ${NAME} 5000`,
      `sentinel parallel-syncs ${NAME} 1`,
      ''
    ].join('\n'))
    const port = await freePort()
    children.push(await spawnRedis(port, [file, '--sentinel'], MONITORING))
    ports.push(port)
  }
  const sentinels = ports.map((port) => ({ host: '127.0.0.1', port }))
  // A failover needs the replica known to every sentinel, and the sentinels to each other (quorum).
  await until('the replica in sync and every sentinel aware of it and of the others', async () => {
    for (const port of ports) {
      const replicas = await sentinelCommand(port, 'replicas', NAME) as string[][]
      const others = await sentinelCommand(port, 'sentinels', NAME) as unknown[]
      const linked = replicas.some((fields) => fields.join(' ').includes('master-link-status ok'))
      if (!linked || others.length < 2) return false
    }
    return true
  }, 20_000)
  return {
    name: NAME,
    sentinels,
    sentinelList: ports.map((port) => `127.0.0.1:${port}`).join(','),
    master,
    replica,
    async masterIs (port, timeout = 20_000) {
      await until(`every sentinel naming port ${port} as master`, async () => {
        for (const sentinel of ports) {
          const [, masterPort] = await sentinelCommand(sentinel, 'get-master-addr-by-name', NAME) as [string, string]
          if (Number(masterPort) !== port) return false
        }
        return true
      }, timeout)
    }
  }
}
