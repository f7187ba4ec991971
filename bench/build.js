// Transpiles the benchmark and the code it runs into node_modules/.cache/notify-edge-bench, without type checking:
// `npm run typecheck` covers these files, and a full tsc build would take most of the
// --quick budget on a busy machine. Servers then run plain JavaScript, as in production.
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
// Outside the project's own tree (under node_modules/.cache), so that coverage of a test that
// runs the bench never counts this transpiled copy.
const out = join(root, 'node_modules', '.cache', 'notify-edge-bench')

function * sources (dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) {
      if (name !== 'results' && name !== 'public') yield * sources(path)
    } else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) {
      yield path
    }
  }
}

const stale = []
for (const dir of ['bench', 'plugins', 'example-app', 'bin', 'client']) {
  for (const file of sources(join(root, dir))) {
    const target = join(out, relative(root, file)).replace(/\.ts$/, '.js')
    let built = 0
    try {
      built = statSync(target).mtimeMs
    } catch {}
    if (built < statSync(file).mtimeMs) stale.push([file, target])
  }
}

if (stale.length > 0) {
  // Loaded only when something changed: TypeScript alone takes seconds to load on a busy machine.
  const { default: ts } = await import('typescript')
  const compilerOptions = { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true }
  for (const [file, target] of stale) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions, fileName: file })
    mkdirSync(dirname(target), { recursive: true })
    // Written aside, then renamed into place: two builds at once (two bench tests starting
    // together) must never let a bench process load a file the other is half-way through writing.
    const aside = `${target}.${process.pid}.tmp`
    writeFileSync(aside, outputText)
    renameSync(aside, target)
  }
  console.error(`bench: transpiled ${stale.length} files into ${relative(root, out)}`)
}
