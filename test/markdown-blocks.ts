// TypeScript blocks of the README and docs, as the consumer test compiles and runs them.
//
// Every ```ts block is checked. An HTML comment right above a block (invisible on GitHub) may say
// how, and give code to put before it, for a block that is a fragment of a bigger program:
//
//   <!-- consumer-test: browser | run | skip
//   import Fastify from 'fastify'     ← prelude: prepended to the block
//   -->
//
// `browser`: compiled as a browser bundle would (DOM, no Node types); `run`: also executed with
// Node once compiled; `skip`: not checked (the comment says why); `file=streams.ts`: the module's
// file name, so that later blocks of the same document can import it. A `<!-- consumer-test-after`
// comment right below a `run` block is appended to it: checks of what the running example does.
import { readFileSync } from 'node:fs'

export interface CodeBlock {
  /** Where the block starts: `README.md:42`. */
  origin: string
  browser: boolean
  run: boolean
  skip: boolean
  /** The file name a `file=` flag gave. */
  file?: string
  /** Prelude, block and epilogue, as one module. */
  source: string
  /** Lines of `source` before the block's first line, to map diagnostics back to the Markdown. */
  offset: number
}

const MARKER = /^<!-- consumer-test: ?([a-z0-9=., -]*)$/
const AFTER = /^<!-- consumer-test-after$/
const FLAGS = new Set(['browser', 'run', 'skip'])

/** Lines from `start` up to the closing `-->`, and the index after it. */
function comment (lines: string[], start: number, origin: string): { body: string[], end: number } {
  const close = lines.indexOf('-->', start)
  if (close === -1) throw new Error(`${origin}: consumer-test comment is not closed by a line with -->`)
  return { body: lines.slice(start, close), end: close + 1 }
}

export function codeBlocks (markdown: string, file: string): CodeBlock[] {
  const lines = markdown.split('\n')
  const blocks: CodeBlock[] = []
  let flags: string[] = []
  let prelude: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const marker = MARKER.exec(lines[i])
    if (marker !== null) {
      flags = marker[1].split(',').map((flag) => flag.trim()).filter((flag) => flag !== '')
      const unknown = flags.find((flag) => !FLAGS.has(flag) && !/^file=[a-z0-9-]+\.ts$/.test(flag))
      if (unknown !== undefined) throw new Error(`${file}:${i + 1}: unknown consumer-test flag ${unknown}`)
      const { body, end } = comment(lines, i + 1, `${file}:${i + 1}`)
      prelude = body
      i = end - 1
      if (lines[end] !== '```ts') throw new Error(`${file}:${i + 1}: a consumer-test comment must sit right above a \`\`\`ts block`)
      continue
    }
    if (lines[i] !== '```ts') continue
    const start = i + 2
    const close = lines.indexOf('```', i + 1)
    if (close === -1) throw new Error(`${file}:${i + 1}: unclosed code block`)
    const code = lines.slice(i + 1, close)
    let epilogue: string[] = []
    if (AFTER.test(lines[close + 1] ?? '')) {
      const after = comment(lines, close + 2, `${file}:${close + 2}`)
      epilogue = after.body
      i = after.end - 1
    } else {
      i = close
    }
    blocks.push({
      origin: `${file}:${start}`,
      browser: flags.includes('browser'),
      run: flags.includes('run'),
      skip: flags.includes('skip'),
      file: flags.find((flag) => flag.startsWith('file='))?.slice('file='.length),
      source: [...prelude, ...code, ...epilogue].join('\n') + '\n',
      offset: prelude.length
    })
    flags = []
    prelude = []
  }
  return blocks
}

export function markdownBlocks (path: string, name: string): CodeBlock[] {
  return codeBlocks(readFileSync(path, 'utf8'), name)
}
