import t from 'tap'
import { codeBlocks } from './markdown-blocks.js'

const FENCE = '```'

t.test('reads ts blocks with their flags, prelude and epilogue, and where they start', async (t) => {
  const markdown = [
    '# Title',
    `${FENCE}js`, 'ignored()', FENCE,
    '<!-- consumer-test: run, browser',
    'const app = make()',
    '-->',
    `${FENCE}ts`, 'app.go()', FENCE,
    '<!-- consumer-test-after',
    'check(app)',
    '-->',
    `${FENCE}ts`, 'plain()', FENCE,
    '<!-- consumer-test: skip, file=part-1.ts',
    '-->',
    `${FENCE}ts`, 'fragment(', FENCE
  ].join('\n')
  const blocks = codeBlocks(markdown, 'x.md')
  t.same(blocks.map(({ origin, browser, run, skip, offset }) => ({ origin, browser, run, skip, offset })), [
    { origin: 'x.md:9', browser: true, run: true, skip: false, offset: 1 },
    { origin: 'x.md:15', browser: false, run: false, skip: false, offset: 0 },
    { origin: 'x.md:20', browser: false, run: false, skip: true, offset: 0 }
  ])
  t.equal(blocks[0].source, 'const app = make()\napp.go()\ncheck(app)\n')
  t.equal(blocks[1].source, 'plain()\n')
  t.equal(blocks[2].file, 'part-1.ts')
  t.equal(blocks[0].file, undefined)
})

t.test('refuses markers it cannot honour', async (t) => {
  t.throws(() => codeBlocks('<!-- consumer-test: fast\n-->\n```ts\nx\n```', 'x.md'), /unknown consumer-test flag fast/)
  t.throws(() => codeBlocks('<!-- consumer-test: run\nx', 'x.md'), /not closed/)
  t.throws(() => codeBlocks('<!-- consumer-test: run\n-->\n\n```ts\nx\n```', 'x.md'), /right above/)
  t.throws(() => codeBlocks('```ts\nx', 'x.md'), /unclosed code block/)
  t.throws(() => codeBlocks('```ts\nx\n```\n<!-- consumer-test-after\nx', 'x.md'), /not closed/)
})
