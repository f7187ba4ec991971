import t from 'tap'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { LAG_SAMPLE_EVERY } from '../plugins/streams/connection.js'
import { BUS_LAG_SAMPLE_EVERY } from '../plugins/streams/fanout.js'
import { registrationError, build, connectUser } from './helpers.js'
import { AMQP_URL, amqpNames } from './rabbitmq.js'
import { until } from './redis-server.js'

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const doc = (name: string): string => readFileSync(fileURLToPath(new URL(`../docs/${name}`, import.meta.url)), 'utf8')
// Labels Prometheus adds on scrape, and a histogram's bucket bound.
const SCRAPE_LABELS = new Set(['instance', 'job', 'le'])

/** The PromQL expressions of the alert rules and the dashboard. */
function expressions (): string[] {
  const rules = [...doc('prometheus-alerts.yml').matchAll(/^\s*expr: (.+)$/gm)].map((m) => m[1])
  const dashboard = JSON.parse(doc('grafana-dashboard.json')) as { panels: Array<{ targets: Array<{ expr: string }> }>, templating: { list: Array<{ query?: unknown }> } }
  const panels = dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr))
  const variables = dashboard.templating.list.flatMap((v) => typeof v.query === 'string' && v.query.includes('notify_edge_') ? [v.query] : [])
  return [...rules, ...panels, ...variables]
}

t.test('every metric the dashboard and the alert rules name exists on a running edge, with the labels they use', async (t) => {
  const names = amqpNames(t)
  const edge = await build(t, {
    redis: REDIS,
    topicPrefix: `ob${randomBytes(4).toString('hex')}`,
    metrics: {},
    amqp: { url: AMQP_URL, ...names }
  })
  await until('the consumer', () => edge.app.notifyAmqp.health().state === 'consuming', 10_000)
  const text = await (await fetch(`${edge.http}/metrics`)).text()
  const { registry } = edge.app.notifyMetrics
  const exprs = expressions()
  t.ok(exprs.length >= 20, `${exprs.length} expressions`)
  for (const expr of exprs) {
    const metrics = [...new Set([...expr.matchAll(/notify_edge_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, '')))]
    t.ok(metrics.length > 0, `names a metric: ${expr}`)
    const labels = new Set(SCRAPE_LABELS)
    for (const name of metrics) {
      t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is served on /metrics`)
      const metric = registry.getSingleMetric(name) as unknown as { labelNames?: string[] } | undefined
      for (const label of metric?.labelNames ?? []) labels.add(label)
    }
    const used = [
      ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1].matchAll(/([a-z_]+)\s*[=!]~?/g)].map((l) => l[1])),
      ...[...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((l) => l.trim()))
    ]
    for (const label of used) t.ok(labels.has(label), `${label} is a label of ${metrics.join(', ')}`)
  }
})

t.test('the alert rules pass promtool check rules (when promtool is on PATH)', async (t) => {
  let version: string
  try {
    version = execFileSync('promtool', ['--version'], { encoding: 'utf8' })
  } catch {
    t.comment('skipped: promtool is not installed (Debian: apt-get install prometheus)')
    return
  }
  t.comment(version.split('\n')[0])
  const out = execFileSync('promtool', ['check', 'rules', fileURLToPath(new URL('../docs/prometheus-alerts.yml', import.meta.url))], { encoding: 'utf8' })
  t.match(out, /SUCCESS: \d+ rules found/)
})

t.test('latency is measured per stream kind: delivery lag, bus lag, negative samples clamped and counted', async (t) => {
  const edge = await build(t, {
    redis: REDIS,
    topicPrefix: `ob${randomBytes(4).toString('hex')}`,
    metrics: { defaultMetrics: false }
  })
  const alice = await connectUser(t, edge, 'alice')
  await alice.subscribe('promotional', 'order')
  for (let i = 0; i < LAG_SAMPLE_EVERY; i++) await edge.app.notify.publish({ stream: 'promotional', data: { i } })
  for (let i = 0; i < BUS_LAG_SAMPLE_EVERY; i++) await edge.app.notify.publish({ stream: 'order', user: 'alice', data: { orderId: String(i), status: 'placed' } })
  let received = 0
  await until('the deliveries', () => (received += alice.messages().length) === LAG_SAMPLE_EVERY + BUS_LAG_SAMPLE_EVERY, 10_000)
  const { registry } = edge.app.notifyMetrics
  const values = async (name: string): Promise<Array<{ labels: Record<string, unknown>, value: number, metricName?: string }>> =>
    (await registry.getSingleMetric(name)!.get()).values
  const count = async (name: string, labels: Record<string, string>): Promise<number> =>
    (await values(name)).filter((v) => v.metricName?.endsWith('_count') && Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((sum, v) => sum + v.value, 0)
  t.ok(await count('notify_edge_delivery_lag_seconds', { kind: 'public' }) >= 1, 'a sampled write of a public stream')
  t.ok(await count('notify_edge_bus_lag_seconds', { kind: 'public' }) >= 1, 'a sampled bus receipt of a public stream')
  t.ok(await count('notify_edge_bus_lag_seconds', { kind: 'private' }) >= 1, 'a sampled bus receipt of a private stream')

  edge.app.notifyMetrics.busLag(`${Date.now() + 60_000}-0`, 'private')
  edge.app.notifyMetrics.lag(`${Date.now() + 60_000}-0`)
  edge.app.notifyMetrics.lag('not-an-id', 'public')
  const negative = await values('notify_edge_negative_lag_total')
  t.same(negative.map((v) => [v.labels.metric, v.labels.kind, v.value]).sort(), [['bus', 'private', 1], ['delivery', 'unknown', 1]], 'a sample from a clock ahead is counted')
  const lowest = (await values('notify_edge_bus_lag_seconds')).find((v) => v.labels.kind === 'private' && v.labels.le === 0.001)
  t.ok(lowest !== undefined && lowest.value >= 1, 'and observed as 0')
  t.equal((await values('notify_edge_bus_healthy'))[0]?.value, 1, 'the Redis bus is healthy')
})

t.test('the tracing option is validated at registration', async (t) => {
  t.equal((await registrationError({ tracing: 'yes' }))?.code, 'FST_NOTIFY_INVALID_OPTION')
  t.equal(await registrationError({ tracing: false }), null)
})
