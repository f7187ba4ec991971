import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    env: ['browser'],
    ignores: ['dist/**', 'node_modules/**', 'bench/results/**', '.tap/**', 'coverage/**']
  })
]
