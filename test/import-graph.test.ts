import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// The plugins' import graph runs one way (STYLE.md): leaves at the bottom, the umbrella on top.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const pluginsDir = join(root, 'plugins')

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return sources(path)
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : []
  })
}

/** Each plugin file → the plugin files it imports (types included: they tie modules together as much). */
function importGraph (): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sources(pluginsDir)) {
    const text = readFileSync(file, 'utf8')
    const targets = [...text.matchAll(/^(?:import|export)[^'"]*?from\s+'(\.[^']+)'/gm)]
      .map((match) => relative(root, resolve(dirname(file), match[1].replace(/\.js$/, '.ts'))))
    graph.set(relative(root, file), targets)
  }
  return graph
}

function findCycle (graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  function visit (node: string): string[] | null {
    if (state.get(node) === 'done') return null
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node]
    state.set(node, 'open')
    path.push(node)
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next)
      if (cycle !== null) return cycle
    }
    path.pop()
    state.set(node, 'done')
    return null
  }
  for (const node of graph.keys()) {
    const cycle = visit(node)
    if (cycle !== null) return cycle
  }
  return null
}

const graph = importGraph()

t.test('reads every plugin file and its relative imports', async (t) => {
  t.ok(graph.size > 20)
  t.ok(graph.get(join('plugins', 'index.ts'))?.includes(join('plugins', 'streams', 'index.ts')))
})

t.test('the plugins import graph has no cycle', async (t) => {
  t.same(findCycle(graph), null)
})

t.test('finds a cycle when there is one', async (t) => {
  t.same(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), ['a', 'b', 'c', 'a'])
})

t.test('nothing but the umbrella imports from plugins/streams/', async (t) => {
  const streams = join('plugins', 'streams') + '/'
  const outside = [...graph].filter(([file, targets]) =>
    !file.startsWith(streams) && file !== join('plugins', 'index.ts') && targets.some((target) => target.startsWith(streams)))
  t.same(outside.map(([file]) => file), [])
})

t.test('metrics is a leaf: it imports no other plugin', async (t) => {
  const imports = graph.get(join('plugins', 'metrics.ts')) ?? []
  t.same(imports.filter((target) => !['errors.ts', 'recorder.ts'].includes(target.slice('plugins/'.length))), [])
})
