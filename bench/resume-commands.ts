// How much Redis work one resuming subscribe costs: the commands Redis runs (seen by MONITOR)
// and the writes the edge makes to Redis (each an awaited step, so an upper bound on round
// trips) while one socket subscribes to N channel keys with `since`, each key having missed one
// message. Counts, not timings.
//
//   node --import @tapjs/typescript/import bench/resume-commands.ts [--keys 50]
//
// Runs on a private redis-server of its own (MONITOR sees only this edge).
import { Socket } from 'node:net'
import { once } from 'node:events'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import WebSocket from 'ws'
import { defineStreams, notifyEdge } from '../plugins/index.js'
import { startRedis } from './lib/redis.js'

const at = process.argv.indexOf('--keys')
const keys = at < 0 ? 50 : Number(process.argv[at + 1])
const streams = defineStreams([{ name: 'feed', kind: 'channel', anonymous: true, openAccess: true, history: { size: 100, ttl: 3600 } }])

type Frame = Record<string, any>

/** An anonymous socket on the edge's `/public`, its frames queued. */
async function socket (url: string): Promise<{ ws: WebSocket, next: (event: string) => Promise<Frame> }> {
  const ws = new WebSocket(url)
  const frames: Frame[] = []
  let wake = (): void => {}
  ws.on('message', (data) => { frames.push(JSON.parse(data.toString())); wake() })
  await once(ws, 'open')
  const next = async (event: string): Promise<Frame> => {
    for (;;) {
      const i = frames.findIndex((f) => f.event === event)
      if (i >= 0) return frames.splice(i, 1)[0]
      await new Promise<void>((resolve) => { wake = resolve })
    }
  }
  await next('welcome')
  return { ws, next }
}

const redis = await startRedis()
const port = Number(new URL(redis.url).port)
// Every write a connection of this process makes to the Redis port, by connection (local port):
// the bus's subscriber connection and the command connection (history) apart.
const writes = new Map<number, number>()
const write = Socket.prototype.write
Socket.prototype.write = function (this: Socket, ...args: unknown[]) {
  if (this.remotePort === port) writes.set(this.localPort!, (writes.get(this.localPort!) ?? 0) + 1)
  return (write as (...a: unknown[]) => boolean).apply(this, args)
} as typeof write

const app = Fastify({ logger: false })
await app.register(notifyEdge, { jwt: { secret: 'resume-commands-bench-secret-long-enough' }, streams, redis: redis.url, tickets: false, presence: false, control: false })
await app.listen({ port: 0, host: '127.0.0.1' })
const ws = `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/public`
const names = Array.from({ length: keys }, (_, i) => `feed:k${i}`)
for (const name of names) await app.notify.publish({ stream: 'feed', key: name.slice(5), data: { n: 0 } })

const monitor = await new Redis(redis.url).monitor()
const commands = new Map<string, number>()
let counting = false
// A script's own commands show as from 'lua': counted apart from what the edge sent.
monitor.on('monitor', (_time: string, args: string[], source: string) => {
  if (!counting) return
  const name = `${source === 'lua' ? 'lua ' : ''}${args[0].toUpperCase()}`
  commands.set(name, (commands.get(name) ?? 0) + 1)
})

/** Sends `streams` in one subscribe and waits for `subscribed` and `replays` messages; counts. */
async function measure (label: string | null, requested: unknown[], replays: number): Promise<Frame> {
  const { ws: sock, next } = await socket(ws)
  commands.clear()
  // MONITOR's own traffic goes out on its connection too: only the edge's count.
  await new Promise((resolve) => setTimeout(resolve, 100))
  counting = true
  writes.clear()
  sock.send(JSON.stringify({ event: 'subscribe', id: 's', streams: requested }))
  const subscribed = await next('subscribed')
  for (let i = 0; i < replays; i++) await next('message')
  const edgeWrites = [...writes.values()].sort((a, b) => b - a)
  await new Promise((resolve) => setTimeout(resolve, 200))
  counting = false
  const sent = [...commands].filter(([name]) => !name.startsWith('lua ')).reduce((a, [, n]) => a + n, 0)
  if (label !== null) console.log(JSON.stringify({ label, streams: requested.length, commandsSent: sent, byCommand: Object.fromEntries(commands), edgeWritesPerConnection: edgeWrites }))
  sock.close()
  await once(sock, 'close')
  // Let the edge unsubscribe the bus, so that the next subscribe starts from a cold instance.
  await new Promise((resolve) => setTimeout(resolve, 300))
  return subscribed
}

// Loads the scripts (EVAL after NOSCRIPT), so that the counts below are those of every later subscribe.
await measure(null, ['feed:warm', { stream: 'feed:warm2', since: '1-0' }], 0)
const fresh = await measure('fresh subscribe (positions)', names, 0)
for (const name of names) await app.notify.publish({ stream: 'feed', key: name.slice(5), data: { n: 1 } })
await measure('resuming subscribe (since, one missed each)', names.map((name) => ({ stream: name, since: fresh.positions[name] })), keys)

monitor.disconnect()
await app.close()
Socket.prototype.write = write
await redis.stop()
