// Channel keys at scale (docs/channels.md): memory per subscribed key, and what a publish to one
// key costs with few keys live against many.
//
//   node --expose-gc --import @tapjs/typescript/import bench/channels.ts [--sockets 20000] [--keys-per-socket 5] [--count 20000] [--callgrind]
//
// The edge and its WebSocket clients share this process (one loopback port, no HTTP for
// publishing), so memory is read as a difference: heap with every socket open and subscribed to
// nothing, then with each subscribed to its keys; the clients hold the same in both. Publishing is
// in-process and awaits the bus, as bench/history.ts does. Raise `ulimit -n` for large runs.
//
// Each measured run follows an unmeasured one to the same key, with many keys live as with few:
// the first publishes after subscribing 100,000 keys (and after the forced GC that reads the heap)
// re-optimize the publish path and sweep the big heap, which once made a publish look twice as
// dear with many keys live (docs/benchmarks.md). With `--callgrind`, under
// `valgrind --tool=callgrind --instr-atstart=no`, only the measured runs are instrumented, each
// dumped on its own (`callgrind_control`): instruction counts, which a busy machine does not move.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { notifyEdge } from '../plugins/index.js'
import { machine } from './lib/machine.js'

function arg (name: string, fallback: number): number {
  const at = process.argv.indexOf(name)
  return at < 0 ? fallback : Number(process.argv[at + 1])
}
const sockets = arg('--sockets', 20000)
const keysPerSocket = arg('--keys-per-socket', 5)
const count = arg('--count', 20000)
const callgrind = process.argv.includes('--callgrind')
const FEW = 10
const data = { text: 'a chat line of about the size of a real one, give or take', n: 0 }

function heap (): number {
  globalThis.gc?.()
  globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

const app = Fastify({ logger: false })
await app.register(notifyEdge, {
  jwt: { secret: 'a-bench-secret-that-is-long-enough-for-hs256' },
  streams: [{ name: 'room', kind: 'channel', openAccess: true }],
  tickets: false,
  presence: false,
  routes: [{ path: '/ws', maxSubscriptions: Math.max(100, keysPerSocket), frameRate: false, heartbeatInterval: false }]
})
await app.listen({ port: 0, host: '127.0.0.1' })
const url = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws?token=${app.jwt.sign({ sub: 'bench' })}`

/** Opens a socket and waits for its welcome. */
async function open (): Promise<WebSocket> {
  const socket = new WebSocket(url)
  await once(socket, 'message')
  return socket
}

/** Subscribes `socket` to `keys` and waits for the answer. */
async function subscribe (socket: WebSocket, keys: string[]): Promise<void> {
  const answered = new Promise<void>((resolve) => {
    const onMessage = (raw: WebSocket.RawData): void => {
      if ((JSON.parse(raw.toString()) as { event: string }).event !== 'subscribed') return
      socket.off('message', onMessage)
      resolve()
    }
    socket.on('message', onMessage)
  })
  socket.send(JSON.stringify({ event: 'subscribe', streams: keys.map((key) => `room:${key}`) }))
  await answered
}

// Collections, counted as V8 reports them: load moves their time, not their number.
const collections = { minor: 0, major: 0 }
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    if ((entry as unknown as { detail: { kind: number } }).detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) collections.minor++
    else collections.major++
  }
}).observe({ entryTypes: ['gc'] })
// The observer hears of a collection a turn later: this lets it catch up.
const settled = async (): Promise<{ minor: number, major: number }> => {
  await sleep(20)
  return { ...collections }
}

const run = promisify(execFile)
const callgrindControl = async (...args: string[]): Promise<void> => {
  if (callgrind) await run('callgrind_control', [...args, String(process.pid)])
}

interface Run { perSecond: number, cpuMicros: number, minorGcPer1000: number, majorGcPer1000: number }

/** Publishes `count` messages to `key`, 16 at a time: per publish, wall time, CPU and collections. */
async function publishTo (key: string, label?: string): Promise<Run> {
  let next = 0
  const gcBefore = await settled()
  if (label !== undefined) {
    await callgrindControl('--zero')
    await callgrindControl('--instr=on')
  }
  const cpu = process.cpuUsage()
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < count) await app.notify.publish({ stream: 'room', key, data: { ...data, n: next++ } })
  }))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const used = process.cpuUsage(cpu)
  if (label !== undefined) {
    await callgrindControl('--instr=off')
    await callgrindControl(`--dump=${label}`)
  }
  const gcAfter = await settled()
  const per1000 = (n: number): number => Math.round(n / count * 1000 * 100) / 100
  return {
    perSecond: Math.round(count / seconds),
    cpuMicros: Math.round((used.user + used.system) / count * 100) / 100,
    minorGcPer1000: per1000(gcAfter.minor - gcBefore.minor),
    majorGcPer1000: per1000(gcAfter.major - gcBefore.major)
  }
}

const host = machine()
const clients: WebSocket[] = []
for (let i = 0; i < sockets; i += 100) clients.push(...await Promise.all(Array.from({ length: Math.min(100, sockets - i) }, open)))

// A few keys live: the first FEW sockets hold one each. A first run warms the publish path up.
for (let i = 0; i < FEW; i++) await subscribe(clients[i], [`few-${i}`])
await publishTo('few-0')
const withFew = await publishTo('few-0', 'few-keys')

const before = heap()
for (let i = 0; i < sockets; i += 100) {
  await Promise.all(clients.slice(i, i + 100).map((client, j) =>
    subscribe(client, Array.from({ length: keysPerSocket }, (_, k) => `k${(i + j) * keysPerSocket + k}`))))
}
const after = heap()
const keys = app.notifyStreams.get('/ws')!.topicCount()
// As before the run with few keys: one unmeasured run first.
await publishTo('few-0')
const withMany = await publishTo('few-0', 'many-keys')

const result = {
  sockets,
  keysPerSocket,
  keysLive: keys,
  bytesPerSubscription: Math.round((after - before) / (sockets * keysPerSocket)),
  publishToOneKey: { [`${FEW} keys live`]: withFew, [`${keys} keys live`]: withMany },
  // Flat is 1 within the machine's noise; on a busy machine, read the collection counts instead.
  cpuRatio: Math.round(withMany.cpuMicros / withFew.cpuMicros * 100) / 100,
  machine: host.finish()
}
console.log(JSON.stringify(result, null, 2))
console.log(`publish to one key: ${withFew.cpuMicros} µs CPU with ${FEW} keys live, ${withMany.cpuMicros} µs with ${keys}: ${result.cpuRatio} ×`)
if (result.machine.note !== undefined) console.log(result.machine.note)
for (const client of clients) client.terminate()
await app.close()
