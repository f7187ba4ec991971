import t from 'tap'
import { runBench } from './bench-run.js'

// A smoke test of the scale scenario (`npm run bench -- --sessions scale`) at a tiny size: it runs
// every phase over six instances and two load generators, loses nothing in the storm, and prints
// the targets. Never a speed threshold: the figures depend on the machine and what else runs on it.

const N = 300
t.setTimeout(180_000)
t.test('npm run bench -- --sessions scale runs at a tiny size, every client back, nothing lost', { timeout: 180_000 }, async (t) => {
  const args = ['--sessions', 'scale', '--scale-connections', String(N), '--scale-idle-seconds', '5', '--scale-heartbeat-seconds', '5', '--scale-private-seconds', '1', '--scale-storm-seconds', '3']
  const { code, output, results } = await runBench(t, args)
  t.equal(code, 0, 'exits with 0')

  const { scale, environment } = results
  t.equal(scale.error, undefined, 'no error')
  t.match(scale, { instances: 6, loadgens: 2, connections: N, broadcastDelivered: N, private: { rate: 1000, sent: 1000, delivered: 1000, missing: 0 } })
  for (const key of ['rssPerConnectionKB', 'rssPerSubscriptionKB', 'kernelSocketMemPerConnectionKB', 'idleCorePercentPer10k', 'broadcastLastMs', 'broadcastCpuPerDeliveryUs']) {
    t.ok(Number.isFinite(scale[key]), `${key} is a number`)
  }
  t.equal(scale.idleSeconds, 5, 'the idle window spans whole heartbeat periods')
  t.ok(scale.idleSweeps.ran >= 1, 'ping sweeps ran in the idle window')
  for (const key of ['idleUsPerSocketCycle', 'idleSweepUsPerSocketCycle', 'idleRestUsPerSocketCycle', 'broadcastClientCpuPerDeliveryUs', 'loadAverageMax']) {
    t.ok(Number.isFinite(scale[key]), `${key} is a number`)
  }
  t.equal(scale.fileLimits.length, 8, 'the descriptor limit of every instance and load generator')
  t.ok(scale.storm.orphans > 0, 'the killed instance held clients')
  t.match(scale.storm, { back: N, lost: 0, refused: 0, published: 3000, reconnects: scale.storm.orphans })
  t.ok(scale.storm.recoverySeconds > 0 && scale.storm.peakHandshakesPerSecond > 0)
  // The floor: a raw frame to every socket, on the same sockets as the broadcast.
  t.match(scale.broadcastFloor, { delivered: N })
  for (const key of ['lastMs', 'cpuPerDeliveryUs', 'clientCpuPerDeliveryUs', 'timeRatio', 'cpuRatio']) t.ok(Number.isFinite(scale.broadcastFloor[key]), `floor ${key} is a number`)
  // Why the storm took its time: every reconnect counted by its attempts, none of them malformed.
  const attempts = Object.values(scale.storm.attemptsPerReconnect as Record<string, number>).reduce((a, b) => a + b, 0)
  t.equal(attempts, scale.storm.reconnects, 'every reconnect counted by the attempts it took')
  t.equal(scale.storm.reconnectMs.count, scale.storm.reconnects, 'a drop-to-subscribed time for each reconnect')
  t.equal((scale.storm.reconnectsBySecond as number[]).reduce((a, b) => a + b, 0), scale.storm.reconnects, 'reconnects per second add up')
  t.equal(scale.storm.malformedFrames, 0, 'every message frame had an id of the SPEC shape')
  t.ok(Number.isInteger(scale.storm.kernelTcp.ListenOverflows) && scale.storm.listenBacklog > 511, 'the accept queues are past Node\'s default, and their overflows counted')
  t.match(output, /floor on the same sockets .* the edge takes [\d.]+× the floor's time/)
  t.match(output, /storm reconnects: attempts each needed \d+: \d+/)
  t.equal(environment.loadAverageAfter.length, 3)
  t.match(output, /Targets \(issue 31\):\n- server RSS per connection with its subscriptions ≤ 8 KB: /)
  t.match(output, /- storm: messages lost = 0: 0 → met/)
  t.match(output, /load average before [\d. ]+, after [\d. ]+/)
  t.match(output, /per socket per heartbeat cycle: [\d.]+ µs of server CPU, [\d.]+ µs in the ping sweep/)
  // A busy machine is flagged: the shared test machine's load is known to the test as well.
  if (scale.loadAverageMax > 1.5) t.match(output, /The machine was busy \(load average up to [\d.]+, above 1\.5\)/)
})
