// Redis Cluster for tests: three masters (and a replica each, for failover tests), each a real
// redis-server on a free port, killed when the test ends. Node timeouts are short so a test sees
// a shard fail over in seconds.

import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { redisServer, until, type RedisServer } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

export interface ClusterSetup {
  /** Seed nodes, as ioredis's Cluster and `redis: { cluster }` want them. */
  nodes: Array<{ host: string, port: number }>
  /** `host:port,…`, as `REDIS_CLUSTER` wants them. */
  nodeList: string
  servers: RedisServer[]
  /** The port of the master that serves `slot` now, as the nodes agree on it. */
  masterOf (slot: number): Promise<number>
  /** A plain connection to one node (not cluster-aware), closed when the test ends. */
  node (port: number): Redis
}

const run = promisify(execFile)

async function clusterCommand (port: number, ...args: string[]): Promise<string> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    return await client.call('CLUSTER', ...args) as string
  } finally {
    client.disconnect()
  }
}

/** Three masters, with `replicas` replicas each, every slot assigned and every node agreeing. */
export async function redisCluster (t: Test, replicas: 0 | 1 = 0): Promise<ClusterSetup> {
  const dir = await mkdtemp(join(tmpdir(), 'notify-cluster-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const servers: RedisServer[] = []
  for (let n = 0; n < 3 * (1 + replicas); n++) {
    servers.push(await redisServer(t, [
      '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${n}.conf`),
      '--cluster-node-timeout', '1000', '--cluster-replica-validity-factor', '0'
    ]))
  }
  const addresses = servers.map((server) => `127.0.0.1:${server.port}`)
  await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'])
  await until('every node reporting the cluster ok, with every node known', async () => {
    for (const server of servers) {
      const info = await clusterCommand(server.port, 'INFO')
      if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${servers.length}`)) return false
    }
    return true
  }, 20_000)
  if (replicas > 0) {
    await until('every replica in sync', async () => {
      for (const server of servers) {
        const client = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
        client.on('error', () => {})
        try {
          const replication = await client.info('replication')
          if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false
        } finally {
          client.disconnect()
        }
      }
      return true
    }, 20_000)
  }
  const opened: Redis[] = []
  t.teardown(() => { for (const client of opened) client.disconnect() })
  return {
    nodes: servers.map((server) => ({ host: '127.0.0.1', port: server.port })),
    nodeList: addresses.join(','),
    servers,
    async masterOf (slot) {
      for (const server of servers) {
        let slots: Array<[number, number, [string, number]]>
        try {
          slots = await clusterCommand(server.port, 'SLOTS') as unknown as typeof slots
        } catch {
          continue
        }
        const range = slots.find(([from, to]) => from <= slot && slot <= to)
        if (range !== undefined) return range[2][1]
      }
      throw new Error(`no node serves slot ${slot}`)
    },
    node (port) {
      const client = new Redis({ port, host: '127.0.0.1' })
      client.on('error', () => {})
      opened.push(client)
      return client
    }
  }
}
