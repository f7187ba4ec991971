import t from 'tap'
import { runBench } from './bench-run.js'

// A smoke test of `npm run bench -- --quick`: it completes and writes results of the expected
// shape. Never a speed threshold: the figures depend on the machine and what else runs on it.

const CONTENDERS = ['edge', 'ws-send', 'ws-frame', 'socketio']
// The edge with flushInterval 0 runs in the sustained scenario only: the latency it is judged against.
const SUSTAINED_CONTENDERS = ['edge', 'edge-flush0', 'ws-send', 'ws-frame', 'socketio']
// The edge with tracing on runs in the fan-out scenario only: what tracing costs.
const FANOUT_CONTENDERS = ['edge', 'edge-traced', 'ws-send', 'ws-frame', 'socketio']
// The edge on the lean Redis emitter runs in the cross-instance scenario only.
const CROSS_CONTENDERS = ['edge', 'edge-lean', 'ws-send', 'ws-frame', 'socketio']
// The edge without the ticket route's rate limit, and the plain server on Fastify, run in the
// handshakes scenario only.
const HANDSHAKE_CONTENDERS = ['edge', 'edge-nolimit', 'ws-send', 'fastify-floor', 'ws-frame', 'socketio']
const ALL_CONTENDERS = ['edge', 'edge-flush0', 'edge-traced', 'edge-lean', 'edge-nolimit', 'ws-send', 'fastify-floor', 'ws-frame', 'socketio']
const METRICS: Record<string, string[]> = {
  fanout: ['cpuPerDeliveryUs', 'deliveriesPerSecond', 'p50Ms', 'p99Ms', 'delivered'],
  sustained: ['cpuPerDeliveryUs', 'deliveriesPerSecond', 'publishesPerSecond', 'p50Ms', 'p99Ms', 'p999Ms', 'delivered'],
  memory: ['rssPerConnectionKB', 'heapPerConnectionKB', 'connections'],
  'cross-instance': ['p50Ms', 'p99Ms', 'p999Ms', 'cpuPerMessageUs', 'delivered'],
  handshakes: ['perSecond', 'p50Ms', 'p99Ms', 'cpuPerHandshakeUs', 'completed'],
  presence: ['perSecond', 'p99Ms', 'cpuPerHandshakeUs', 'redisBytesPerOnlineUser', 'online']
}
// notify-edge alone, on Redis with presence off then on.
const PRESENCE_RUNS = ['edge']

// Every scenario starts processes of its own, which takes long on a loaded machine.
t.setTimeout(300_000)
t.test('npm run bench -- --quick completes and writes every scenario for every contender', { timeout: 300_000 }, async (t) => {
  const { code, output, results } = await runBench(t, ['--quick'])
  t.equal(code, 0, 'exits with 0')
  t.match(output, /\| scenario \| metric \| notify-edge \| notify-edge flushInterval 0 \| notify-edge tracing on \| notify-edge lean emitter \| notify-edge no ticket rate limit \| ws send \| ws send on Fastify \| ws frame-once \| Socket\.IO \|/)

  t.match(results, {
    version: 1,
    quick: true,
    environment: { cpu: String, cores: Number, node: process.version, packages: { ws: String, 'socket.io': String } },
    contenders: ALL_CONTENDERS.map((id) => ({ id, label: String }))
  })
  t.same(results.scenarios.map((s: { kind: string }) => s.kind), ['fanout', 'sustained', 'sustained', 'memory', 'cross-instance', 'handshakes', 'presence', 'presence'])
  t.same(results.scenarios.filter((s: { kind: string }) => s.kind === 'presence').map((s: { params: { on: number } }) => s.params.on), [0, 1])
  for (const scenario of results.scenarios) {
    const contenders = { presence: PRESENCE_RUNS, fanout: FANOUT_CONTENDERS, sustained: SUSTAINED_CONTENDERS, 'cross-instance': CROSS_CONTENDERS, handshakes: HANDSHAKE_CONTENDERS }[scenario.kind as string] ?? CONTENDERS
    t.same(Object.keys(scenario.results).sort(), [...contenders].sort(), `${scenario.id}: every contender`)
    for (const id of contenders) {
      const figures = scenario.results[id]
      t.equal(figures.error, undefined, `${scenario.id} × ${id}: no error`)
      t.equal(figures.complete, true, `${scenario.id} × ${id}: every message delivered, every connection open`)
      for (const metric of METRICS[scenario.kind]) {
        t.ok(Number.isFinite(figures[metric]), `${scenario.id} × ${id}: ${metric} is a number`)
      }
    }
  }
  t.match(results.ingress, { params: { users: Number, flood: Number, rate: Number } })
  for (const id of ['bare-consumer', 'amqp-flood', `amqp-${results.ingress.params.rate}`, 'cpu-http', 'cpu-grpc', 'cpu-grpc-stream', 'cpu-amqp']) {
    t.equal(results.ingress.results[id]?.error, undefined, `ingress ${id}: no error`)
    t.equal(results.ingress.results[id]?.complete, true, `ingress ${id}: every message delivered`)
  }
  t.match(output, /RabbitMQ → edge → sockets: msg\/s/)
  t.ok(results.targets.length > 0)
  for (const target of results.targets) t.match(target, { target: String, limit: Number })
  t.same(results.floors.map((f: { floor: string }) => f.floor), [
    'CPU per handshake, the plain server on Fastify ÷ plain ws',
    'CPU per handshake, notify-edge ÷ the plain server on Fastify',
    'CPU per handshake, notify-edge with no ticket rate limit ÷ the plain server on Fastify',
    'cross-instance CPU per message, plain ws + Redis ÷ Socket.IO'
  ], 'the floors, each from this run')
  for (const floor of results.floors) t.ok(Number.isFinite(floor.value), `${floor.floor}: a number`)
})
