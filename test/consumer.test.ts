// The package as its users get it: packed, installed next to fastify in a project of its own, and
// every TypeScript block of the README and docs compiled there under `strict` with the shipped
// .d.ts checked (`skipLibCheck: false`), the runnable ones run, and the client SDK compiled and
// loaded as a browser bundle would.
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { codeBlocks, markdownBlocks, type CodeBlock } from './markdown-blocks.js'
import { packedProject, root } from './packed.js'

const run = promisify(execFile)
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

const NODE_OPTIONS = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  skipLibCheck: false,
  types: ['node'],
  outDir: 'out',
  rootDir: '.'
}
// A server compiled with a bundler's resolution (tsx, esbuild, Vite's SSR): the shipped .d.ts must
// hold there too, where a default import of a CommonJS package's `export =` is not its namespace.
const SERVER_BUNDLER_OPTIONS = { ...NODE_OPTIONS, module: 'ESNext', moduleResolution: 'Bundler', noEmit: true }
const BROWSER_OPTIONS = {
  target: 'ES2022',
  module: 'ESNext',
  moduleResolution: 'Bundler',
  lib: ['ES2022', 'DOM', 'DOM.Iterable'],
  // No Node types: what the client needs must come from the DOM lib and the package itself.
  types: [],
  strict: true,
  skipLibCheck: false,
  noEmit: true
}

/** Imports the client the way application code in a bundle does, using what a user would. */
const CLIENT_IMPORT = `import { connect, NotifyClient, NotifyClientError, type NotifyMessage } from 'fastify-notify-edge/client'
const client: NotifyClient = connect({ url: '/ws', getTicket: async () => 'ticket' })
const stop: () => void = client.subscribe('order', (message: NotifyMessage) => console.log(message.id, message.data))
client.on('error', (err: NotifyClientError) => console.error(err.code))
stop()
await client.close()
`

/** A block that cannot compile: proves that a broken example makes this test fail. */
const CANARY = '```ts\nimport { notifyEdge } from \'fastify-notify-edge\'\nconst count: number = notifyEdge.name\n```\n'

interface Program { dir: string, files: Map<string, CodeBlock> }

// Packing, installing and three compilations take minutes on a loaded machine, not the usual two.
t.setTimeout(15 * 60_000)
const project = await packedProject()
const work = mkdtempSync(join(project.dir, 'checks-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

function program (name: string, options: object, blocks: CodeBlock[]): Program {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: options, include: ['*.ts'] }))
  const files = new Map<string, CodeBlock>()
  blocks.forEach((block, n) => {
    const file = block.file ?? `block-${n + 1}.ts`
    writeFileSync(join(dir, file), block.source)
    files.set(file, block)
  })
  return { dir, files }
}

/** Compiles a program; its diagnostics per file, with the Markdown line they come from. */
async function compile ({ dir, files }: Program): Promise<Map<string, string[]>> {
  let output = ''
  try {
    await run(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 })
  } catch (err) {
    output = (err as { stdout?: string }).stdout ?? String(err)
  }
  const problems = new Map<string, string[]>()
  for (const line of output.split('\n').filter((line) => line.trim() !== '')) {
    const match = /^(.+?)\((\d+),\d+\): (.*)$/.exec(line)
    const file = match === null ? '' : relative(dir, resolve(dir, match[1]))
    const block = files.get(file)
    const where = block === undefined || match === null
      ? (match === null ? '' : `${file}: `)
      : `${block.origin.replace(/:\d+$/, '')}:${Number(block.origin.split(':')[1]) + Number(match[2]) - 1 - block.offset}: `
    const text = where + (match === null ? line : match[3])
    problems.set(block === undefined ? '' : file, [...(problems.get(block === undefined ? '' : file) ?? []), text])
  }
  return problems
}

const documents = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
const blocks = documents.flatMap((name) => markdownBlocks(join(root, name), name))
const checked = blocks.filter((block) => !block.skip)

t.test('the README and docs have TypeScript examples, few of them skipped', async (t) => {
  t.ok(blocks.filter((block) => block.origin.startsWith('README.md')).length >= 2)
  t.ok(blocks.filter((block) => block.skip).length <= 1, 'at most one skipped block')
})

t.test('every TypeScript block compiles under strict with the shipped types checked, and the runnable ones run', async (t) => {
  const canary = codeBlocks(CANARY, 'canary.md')
  const server = program('server', NODE_OPTIONS, [...checked.filter((block) => !block.browser), ...canary])
  const browser = program('browser', BROWSER_OPTIONS, [
    ...checked.filter((block) => block.browser),
    { origin: 'client-import.ts:1', browser: true, run: false, skip: false, source: CLIENT_IMPORT, offset: 0 }
  ])
  const types = program('types', { ...NODE_OPTIONS, noEmit: true }, readdirSync(join(root, 'test', 'types')).map((name) => ({
    origin: `test/types/${name}:1`, browser: false, run: false, skip: false, source: readFileSync(join(root, 'test', 'types', name), 'utf8'), offset: 0
  })))
  const bundled = program('server-bundler', SERVER_BUNDLER_OPTIONS, checked.filter((block) => !block.browser))
  const [serverProblems, browserProblems, typeProblems, bundledProblems] = await Promise.all([compile(server), compile(browser), compile(types), compile(bundled)])
  t.same(serverProblems.get(''), undefined, 'the installed package\'s own .d.ts compile')
  t.same(bundledProblems.get(''), undefined, 'the installed package\'s own .d.ts compile under Bundler resolution')
  for (const [file, block] of bundled.files) t.same(bundledProblems.get(file) ?? [], [], `${block.origin} compiles under Bundler resolution`)
  t.same(browserProblems.get(''), undefined, 'the client\'s .d.ts compile without Node types')
  t.same(typeProblems.get(''), undefined)
  for (const [file, block] of types.files) {
    t.same(typeProblems.get(file) ?? [], [], `${block.origin.replace(/:1$/, '')}: what must compile does, and every @ts-expect-error line fails to`)
  }
  for (const [file, block] of [...server.files, ...browser.files]) {
    const problems = (block.browser ? browserProblems : serverProblems).get(file) ?? []
    if (block.origin.startsWith('canary.md')) {
      t.match(problems.join('\n'), /canary\.md:3: error TS2322/, 'a block that does not compile is reported, with its Markdown line')
    } else {
      t.same(problems, [], `${block.origin} compiles${block.browser ? ' as a browser bundle' : ''}`)
    }
  }
  for (const [file, block] of server.files) {
    if (!block.run) continue
    const script = join(server.dir, 'out', file.replace(/\.ts$/, '.js'))
    const env = { ...process.env, PORT: '0', JWT_SECRET: 'a-consumer-secret-that-is-long-enough-for-hs256', PUBLISH_API_KEY: 'consumer-api-key-0123456789' }
    // The block's checks (its consumer-test-after comment) throw, so exiting 0 means they held.
    const failure = await run(process.execPath, [script], { cwd: server.dir, env, timeout: 60_000 })
      .then(() => null, (err: Error & { stderr?: string }) => err.stderr ?? err.message)
    t.equal(failure, null, `${block.origin} runs and its checks hold`)
  }
})

t.test('the client loads from the package with no bare import, as a browser would', async (t) => {
  const clientDir = join(project.packageDir, 'dist', 'client')
  const seen = new Set<string>()
  const bare: string[] = []
  const pending = [join(clientDir, 'index.js')]
  while (pending.length > 0) {
    const file = pending.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s*'([^']+)'/g)) {
      if (specifier.startsWith('./') || specifier.startsWith('../')) pending.push(resolve(dirname(file), specifier))
      else bare.push(`${relative(project.packageDir, file)} imports ${specifier}`)
    }
  }
  t.ok(seen.size > 5, `the client's ${seen.size} modules were read`)
  t.same(bare, [], 'every import of the client is relative: it runs in a browser without a bundler, and bundles without Node shims')
  const loaded = await run(process.execPath, ['--input-type=module', '-e',
    "const m = await import('fastify-notify-edge/client'); console.log(typeof m.connect, typeof m.NotifyClient)"], { cwd: project.dir })
  t.equal(loaded.stdout.trim(), 'function function', 'fastify-notify-edge/client resolves through the package exports')
})
