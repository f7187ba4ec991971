// PostgreSQL for tests. `sharedPostgres(t)` uses DATABASE_URL (or 127.0.0.1:5432, database
// `test`) inside a schema of its own, dropped when the test ends; `postgresServer(t)` spawns a
// private cluster (initdb, then postgres) on a free port that the test may kill and restart.
// The shared server is never stopped or reconfigured.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { outboxMigration } from '../plugins/index.js'
import { freePort, until } from './redis-server.js'

type Test = { teardown: (fn: () => unknown) => void }

const running = new Set<ChildProcess>()
// A test process that dies without its teardown must not leave clusters behind.
process.once('exit', () => { for (const child of running) { try { process.kill(-child.pid!, 'SIGKILL') } catch {} } })

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export interface SharedPostgres {
  url: string
  /** A schema unique to this test, dropped at teardown. */
  schema: string
  /** `<schema>.notify_outbox`, migrated. */
  table: string
  /** A pool on the database, closed at teardown. */
  pool: pg.Pool
}

/** A fresh schema with the outbox table migrated in it, on the shared database. */
export async function sharedPostgres (t: Test, url = DATABASE_URL): Promise<SharedPostgres> {
  const schema = `t_${randomBytes(6).toString('hex')}`
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  t.teardown(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
    await pool.end()
  })
  await pool.query(`CREATE SCHEMA ${schema}`)
  const table = `${schema}.notify_outbox`
  await pool.query(outboxMigration(table))
  return { url, schema, table, pool }
}

export interface PostgresServer {
  url: string
  port: number
  /** Kills the postmaster (SIGKILL, as a crash would) and waits for it to exit. */
  stop (): Promise<void>
  /** Starts it again on the same port (crash recovery runs) and waits until it answers. */
  start (): Promise<void>
}

const BIN = (() => {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return ''
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a))
  return versions.length > 0 ? join(root, versions[0], 'bin') : ''
})()

// initdb and postgres refuse to run as root: as root, run them as the postgres user.
const asRoot = process.getuid?.() === 0
function command (bin: string, args: string[]): [string, string[]] {
  const path = join(BIN, bin)
  return asRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args]
}

/** A private PostgreSQL cluster with database `test` and the outbox table, killed when the test ends. */
export async function postgresServer (t: Test): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), 'notify-pg-'))
  if (asRoot) chownSync(dir, Number(spawnSync('id', ['-u', 'postgres']).stdout), Number(spawnSync('id', ['-g', 'postgres']).stdout))
  const data = join(dir, 'data')
  const [initCmd, initArgs] = command('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-N', '-E', 'UTF8'])
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' })
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`)
  const port = await freePort()
  let child: ChildProcess | null = null
  let pgid = 0
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`

  async function start (): Promise<void> {
    if (child !== null) return
    const [cmd, args] = command('postgres', ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=off'])
    // Its own process group: a stop kills the postmaster and every backend at once, as a crash would.
    child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    child.stderr!.resume()
    const spawned = child
    pgid = spawned.pid!
    running.add(spawned)
    spawned.once('exit', () => running.delete(spawned))
    await until('PostgreSQL to accept connections', async () => {
      const client = new pg.Client({ connectionString: url })
      client.on('error', () => {})
      try {
        await client.connect()
        await client.query('SELECT 1')
        return true
      } catch {
        return false
      } finally {
        await client.end().catch(() => {})
      }
    }, 15_000)
  }

  const server: PostgresServer = {
    url,
    port,
    async stop () {
      if (child === null) return
      const exited = once(child, 'exit')
      try { process.kill(-child.pid!, 'SIGKILL') } catch {}
      await exited
      child = null
      await until('the old backends to exit', () => spawnSync('pgrep', ['-g', String(pgid)]).status !== 0, 10_000)
    },
    start
  }
  t.teardown(async () => {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  return server
}
