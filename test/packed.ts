// The package as the people who install it get it: `npm pack` of the built dist/, installed with
// its peer `fastify` into a project of its own outside the repository. One install per tarball:
// every test file (and every run) that packs the same contents reuses it.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, rmSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
// Outside the repository, so that nothing resolves from the repository's node_modules; one per checkout.
const cacheDir = join(tmpdir(), `notify-edge-packed-${createHash('sha1').update(root).digest('hex').slice(0, 12)}`)

/**
 * What the consumer project installs besides the tarball: the peer, Node's types for `process`
 * (the newest, as a new project gets them: the shipped types once compiled against @types/node 20
 * and not against 26), and @fastify/swagger, which the README's OpenAPI example registers.
 */
const CONSUMER_DEPENDENCIES = ['fastify@5', '@types/node@latest', '@fastify/swagger@9']

export interface PackedProject {
  /** A directory with package.json (`"type": "module"`) and node_modules holding the package. */
  dir: string
  /** The installed package: `<dir>/node_modules/fastify-notify-edge`. */
  packageDir: string
  /** The tarball's path. */
  tarball: string
  /** Path of an installed bin, e.g. `fastify-notify-edge`. */
  bin (name: string): string
}

function project (dir: string, filename: string): PackedProject {
  return {
    dir,
    packageDir: join(dir, 'node_modules', 'fastify-notify-edge'),
    tarball: join(dir, filename),
    bin: (name) => join(dir, 'node_modules', '.bin', name)
  }
}

/** `npm` with the output kept; a failure carries npm's stderr. */
async function npm (args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run('npm', args, { cwd, maxBuffer: 16 * 1024 * 1024 })
    return stdout
  } catch (err) {
    const { stderr } = err as { stderr?: string }
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}:\n${stderr ?? String(err)}`)
  }
}

/**
 * Packs the repository (its dist/ must be built: `npm test` builds before tap) and returns a
 * project where the tarball and fastify are installed. Concurrent callers may both install; the
 * first rename wins and the other's copy is dropped.
 */
export async function packedProject (): Promise<PackedProject> {
  if (!existsSync(join(root, 'dist', 'plugins', 'index.js'))) {
    throw new Error('dist/ is not built: run `npm run build` first')
  }
  mkdirSync(cacheDir, { recursive: true })
  const staging = join(cacheDir, `pack-${process.pid}-${Date.now()}`)
  mkdirSync(staging)
  // --ignore-scripts: prepack would rebuild dist/ under the feet of other test files.
  const [packed] = JSON.parse(await npm(['pack', '--json', '--ignore-scripts', '--pack-destination', staging], root)) as Array<{ filename: string, shasum: string }>
  const dir = join(cacheDir, packed.shasum)
  if (existsSync(join(dir, '.installed'))) {
    rmSync(staging, { recursive: true, force: true })
    return project(dir, packed.filename)
  }
  const work = join(cacheDir, `install-${process.pid}-${Date.now()}`)
  mkdirSync(work)
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', join(staging, packed.filename), ...CONSUMER_DEPENDENCIES], work)
  renameSync(join(staging, packed.filename), join(work, packed.filename))
  writeFileSync(join(work, '.installed'), packed.shasum)
  rmSync(staging, { recursive: true, force: true })
  for (const old of readdirSync(cacheDir)) {
    if (old !== packed.shasum && !old.startsWith('pack-') && !old.startsWith('install-')) rmSync(join(cacheDir, old), { recursive: true, force: true })
  }
  try {
    renameSync(work, dir)
  } catch (err) {
    // Another test file installed the same tarball meanwhile: use theirs.
    rmSync(work, { recursive: true, force: true })
    if (!existsSync(join(dir, '.installed'))) throw err
  }
  return project(dir, packed.filename)
}
