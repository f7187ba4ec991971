// SSE against WebSocket on one server process (docs/sse.md, "Cost"): the same fan-out to the
// same number of clients over each, in one run; prints CPU per delivery and memory per open
// connection, and SSE's as a ratio of the WebSocket's. `npm run bench:sse -- --clients 500
// --messages 200`. The server is a child process (`--server`), so its CPU is its own.

import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { notifyEdge } from '../plugins/index.js'
import { machine } from './lib/machine.js'

type Request = { op: 'publish', count: number } | { op: 'sample' }
interface Sample { cpuMicros: number, heapUsed: number, rss: number }

async function server (): Promise<void> {
  const app = Fastify({ logger: false })
  await app.register(notifyEdge, {
    jwt: { secret: 'a-bench-secret-that-is-long-enough-for-hs256' },
    streams: [{ name: 'ticker', kind: 'public' }],
    sse: { secret: 'a-bench-sse-secret-that-is-at-least-32-chars' },
    presence: false
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const gc = (globalThis as { gc?: () => void }).gc
  process.on('message', (request: Request) => {
    if (request.op === 'sample') {
      gc?.()
      const { user, system } = process.cpuUsage()
      const { heapUsed, rss } = process.memoryUsage()
      process.send!({ cpuMicros: user + system, heapUsed, rss })
      return
    }
    ;(async () => {
      for (let n = 0; n < request.count; n++) await app.notify.publish({ stream: 'ticker', data: { n, price: 100 + n / 100 } })
      process.send!({ published: request.count })
    })().catch((err: unknown) => { throw err })
  })
  process.send!({ port: (app.server.address() as { port: number }).port })
}

function ask<T> (child: ChildProcess, request: Request): Promise<T> {
  child.send(request)
  return once(child, 'message').then(([answer]) => answer as T)
}

/** Opens `count` clients of one kind, each counting message events; resolves once all are subscribed. */
async function openClients (kind: 'ws' | 'sse', port: number, count: number, received: { n: number }): Promise<Array<() => void>> {
  const closers: Array<() => void> = []
  for (let i = 0; i < count; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, count - i) }, () => new Promise<void>((resolve, reject) => {
      if (kind === 'ws') {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/public`)
        socket.on('message', (data) => {
          const text = data.toString()
          if (text.startsWith('{"event":"subscribed"')) resolve()
          else if (text.startsWith('{"event":"message"')) received.n++
        })
        socket.once('open', () => socket.send('{"event":"subscribe","streams":["ticker"]}'))
        socket.once('error', reject)
        closers.push(() => socket.terminate())
        return
      }
      const socket: Socket = tcpConnect(port, '127.0.0.1', () => {
        socket.write('GET /public/sse?streams=ticker HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n')
      })
      let tail = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => {
        const text = tail + chunk
        const end = text.lastIndexOf('\n') + 1
        tail = text.slice(end)
        const lines = text.slice(0, end)
        if (lines.includes('event: subscribed\n')) resolve()
        received.n += lines.split('event: message\n').length - 1
      })
      socket.once('error', reject)
      closers.push(() => socket.destroy())
    })))
  }
  return closers
}

async function measure (kind: 'ws' | 'sse', clients: number, messages: number): Promise<{ cpuPerDelivery: number, bytesPerConnection: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { execArgv: ['--expose-gc'] })
  const { port } = await once(child, 'message').then(([m]) => m as { port: number })
  const before = await ask<Sample>(child, { op: 'sample' })
  const received = { n: 0 }
  const closers = await openClients(kind, port, clients, received)
  const opened = await ask<Sample>(child, { op: 'sample' })
  await ask(child, { op: 'publish', count: messages })
  while (received.n < clients * messages) await new Promise((resolve) => setTimeout(resolve, 20))
  const after = await ask<Sample>(child, { op: 'sample' })
  for (const close of closers) close()
  child.kill()
  return {
    cpuPerDelivery: (after.cpuMicros - opened.cpuMicros) / (clients * messages),
    bytesPerConnection: (opened.heapUsed - before.heapUsed) / clients
  }
}

async function main (): Promise<void> {
  const run = machine()
  const { values } = parseArgs({ options: { clients: { type: 'string', default: '500' }, messages: { type: 'string', default: '200' } } })
  const clients = Number(values.clients)
  const messages = Number(values.messages)
  const ws = await measure('ws', clients, messages)
  const sse = await measure('sse', clients, messages)
  const figures = {
    clients,
    messages,
    ws,
    sse,
    ratios: { cpuPerDelivery: sse.cpuPerDelivery / ws.cpuPerDelivery, heapPerConnection: sse.bytesPerConnection / ws.bytesPerConnection },
    machine: run.finish()
  }
  console.log(JSON.stringify(figures, null, 2))
}

if (process.argv.includes('--server')) await server()
else await main()
