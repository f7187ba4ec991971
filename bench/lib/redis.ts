import { execFile, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

// Private, throwaway Redis servers for the bench (the shared one is never touched), and the CPU
// each uses, read from /proc.

export interface BenchRedis {
  /** `--redis <url>` or `--redis-cluster <host:port,…>`, for the edge server. */
  serverArgs: string[]
  pids: number[]
  stop (): Promise<void>
}

export async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  return port
}

async function redisServer (port: number, args: string[] = []): Promise<{ pid: number, stop: () => Promise<void> }> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  process.once('exit', () => child.kill('SIGKILL'))
  await new Promise<void>((resolve, reject) => {
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve()
    })
    exited.then(() => reject(new Error(`redis-server exited: ${output.slice(-500)}`)))
  })
  child.stdout.resume()
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    }
  }
}

/** One redis-server on a free port. */
export async function startRedis (): Promise<BenchRedis & { url: string }> {
  const port = await freePort()
  const server = await redisServer(port)
  const url = `redis://127.0.0.1:${port}`
  return { url, serverArgs: ['--redis', url], pids: [server.pid], stop: server.stop }
}

/** A Redis Cluster of `masters` masters (no replicas) on free ports, every slot assigned. */
export async function startCluster (masters = 3): Promise<BenchRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'notify-bench-cluster-'))
  const ports: number[] = []
  const servers: Array<{ pid: number, stop: () => Promise<void> }> = []
  for (let n = 0; n < masters; n++) {
    const port = await freePort()
    servers.push(await redisServer(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${n}.conf`)]))
    ports.push(port)
  }
  const nodes = ports.map((port) => `127.0.0.1:${port}`)
  await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'])
  for (const port of ports) {
    while (!(await promisify(execFile)('redis-cli', ['-p', String(port), 'CLUSTER', 'INFO'])).stdout.includes('cluster_state:ok')) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return {
    serverArgs: ['--redis-cluster', nodes.join(',')],
    pids: servers.map((server) => server.pid),
    stop: async () => {
      await Promise.all(servers.map((server) => server.stop()))
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100)

/** CPU (user + system) a process has used so far, in µs, from /proc/<pid>/stat. */
export function processCpuUs (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces) start at state: utime, stime are 14, 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_US
}
