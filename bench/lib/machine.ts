import { readFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { round } from './stats.js'

// What every bench's output says about the machine it ran on, and whether it was busy.

export interface Environment {
  cpu: string
  cores: number
  memoryGB: number
  platform: string
  node: string
  packages: Record<string, string>
  loadAverageBefore: number[]
  loadAverageAfter: number[]
}

/** Above this load average (1 minute), a run's figures are not comparable. */
export const BUSY_LOAD = 1.5

function packageVersion (root: string, name: string): string {
  try {
    return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return 'not installed'
  }
}

export function loadAverage (): number[] {
  return os.loadavg().map((v) => round(v, 2))
}

/** The machine now, and the versions of `packages` under `root`; `loadAverageAfter` is filled at the end. */
export function environment (root: string, packages: string[]): Environment {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGB: round(os.totalmem() / 2 ** 30, 1),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    packages: Object.fromEntries(packages.map((name) => [name, packageVersion(root, name)])),
    loadAverageBefore: loadAverage(),
    loadAverageAfter: []
  }
}

/** Whether a load average above BUSY_LOAD, before, after or (`during`) at some phase, makes the run's figures not comparable. */
export function busy (env: Environment, during = 0): boolean {
  return Math.max(env.loadAverageBefore[0] ?? 0, env.loadAverageAfter[0] ?? 0, during) > BUSY_LOAD
}

/** The machine line, and the busy flag when it was (`during`: the highest load seen between). */
export function machineLines (env: Environment, during = 0): string[] {
  return [
    `${env.cpu}, ${env.cores} cores, ${env.memoryGB} GB, ${env.platform}, Node ${env.node}; load average before ${env.loadAverageBefore.join(' ')}, after ${env.loadAverageAfter.join(' ')}${during > 0 ? `, up to ${during} during` : ''}`,
    ...(busy(env, during) ? [`Load average above ${BUSY_LOAD}: the machine was busy, these figures are not a clean run.`] : [])
  ]
}

/**
 * For a stand-alone scenario that prints JSON: call at its start; `finish()` at its end gives the
 * machine with the date, the load after and, when the load made the run busy, a note saying so.
 */
export function machine (packages: string[] = []): { finish: () => Environment & { date: string, busy: boolean, note?: string } } {
  const date = new Date().toISOString()
  const env = environment(process.cwd(), packages)
  return {
    finish () {
      env.loadAverageAfter = loadAverage()
      const [line, note] = machineLines(env)
      return { date, ...env, busy: note !== undefined, summary: line, ...(note !== undefined ? { note } : {}) }
    }
  }
}
