// The package as a consumer gets it: `npm pack` of the built tree, installed from the tarball
// into a fresh project in a temporary directory. Needs `npm run build` first (npm test does it).
// One install per test process, reused by every test in the file, removed when the process ends.

import { execFile } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface PackedProject {
  /** The temporary project's directory, with the tarball installed in node_modules. */
  dir: string
  /** The tarball's path. */
  tarball: string
  /** Path of an installed bin, e.g. `fastify-notify-edge`. */
  bin (name: string): string
}

let installing: Promise<PackedProject> | null = null

async function install (): Promise<PackedProject> {
  const dir = await mkdtemp(join(tmpdir(), 'notify-edge-packed-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 })
  const tarball = join(dir, (JSON.parse(stdout) as Array<{ filename: string }>)[0].filename)
  const project = join(dir, 'consumer')
  await mkdir(project)
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  // From npm's cache where it can: the dependencies are the ones this repository installed.
  await run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--omit=dev'], { cwd: project, maxBuffer: 16 * 1024 * 1024 })
  return { dir: project, tarball, bin: (name) => join(project, 'node_modules', '.bin', name) }
}

/** The packed and installed package, installed once per test process. */
export function packedProject (): Promise<PackedProject> {
  installing ??= install()
  return installing
}
