import t from 'tap'
import { runBench } from './bench-run.js'

// A smoke test of `npm run bench:chat` at a tiny size: every row runs (one and two instances of
// notify-edge and of Socket.IO), every message reaches every member of its room, the table and
// the RPC comparison print. Never a speed threshold: the figures depend on the machine.

const ROOMS = 6
const MEMBERS = 3
const SECONDS = 2
t.setTimeout(240_000)
t.test('npm run bench:chat runs at a tiny size, every publish delivered to its whole room', { timeout: 240_000 }, async (t) => {
  const args = ['--rooms', String(ROOMS), '--members', String(MEMBERS), '--seconds', String(SECONDS), '--calls', '50']
  const { code, output, results } = await runBench(t, args, 'bench:chat')
  t.equal(code, 0, 'exits with 0')

  t.match(results.params, { rooms: ROOMS, members: MEMBERS, seconds: SECONDS, memberPresence: false })
  // Each member publishes once a second; each publish reaches every member of its room, its sender too.
  const expected = ROOMS * MEMBERS * SECONDS * MEMBERS
  t.same(Object.keys(results.rows), ['edge-1', 'socketio-1', 'edge-2', 'socketio-2'])
  for (const [id, row] of Object.entries<Record<string, unknown>>(results.rows)) {
    t.equal(row.error, undefined, `${id}: no error`)
    t.match(row, { delivered: expected, expected, published: ROOMS * MEMBERS * SECONDS, errors: 0, complete: true }, `${id}: every publish acknowledged and delivered`)
    for (const key of ['cpuPerDeliveryUs', 'p50Ms', 'p99Ms']) t.ok(Number.isFinite(row[key]), `${id}: ${key} is a number`)
    t.equal(Number.isFinite(row.redisCpuPerDeliveryUs), id.endsWith('-2'), `${id}: Redis CPU only where there is a Redis bus`)
  }
  t.ok(results.rpc.rpcCpuPerCallUs > 0 && results.rpc.postCpuPerCallUs > 0 && Number.isFinite(results.rpc.ratio), 'RPC and POST, CPU per call')

  t.match(output, /\| run \| deliveries \| server CPU µs\/delivery \|/)
  t.match(output, new RegExp(`\\| edge-1 \\| ${expected} \\| [\\d.]+ \\| – \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\|`), 'edge-1 with its ratios to Socket.IO')
  t.match(output, /load average before [\d. ]+, after [\d. ]+/)
  t.match(output, /Targets are judged at the issue's size only/)
})
