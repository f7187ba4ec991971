// Instance loss with history on Redis: two example-app processes, one killed mid-stream.
import t from 'tap'
import { compareMessageIds } from '../plugins/index.js'
import { exampleProcess } from './example-process.js'
import { API_KEY, SECRET, connect, publish, type Client, type Frame } from './helpers.js'
import { redisServer } from './redis-server.js'

const TOTAL = 1000
const PER_SECOND = 500

/**
 * Publishes TOTAL numbered messages on `system` through `http` at about PER_SECOND, sequentially
 * (numbers in id order) and catching up without a burst when the machine falls behind.
 */
async function publishSteadily (http: string): Promise<number[]> {
  const statuses: number[] = []
  const start = Date.now()
  for (let n = 0; n < TOTAL; n++) {
    const due = start + n * 1000 / PER_SECOND - Date.now()
    if (due > 0) await new Promise((resolve) => setTimeout(resolve, due))
    statuses.push((await publish(http, { stream: 'system', data: { n } })).status)
  }
  return statuses
}

async function receive (client: Client, received: Frame[], until: number): Promise<void> {
  while (received.length < until) received.push(await client.next((f) => f.event === 'message', 5000))
}

t.test('a client moved from A to B by SIGKILL of A mid-stream resumes on B with all 1,000 messages, no gap, no duplicate', async (t) => {
  const redis = await redisServer(t)
  const env = { REDIS_URL: redis.url, JWT_SECRET: SECRET, PUBLISH_API_KEY: API_KEY }
  const [a, b] = await Promise.all([exampleProcess(t, env), exampleProcess(t, env)])

  const onA = (await connect(t, `${a.ws}/public`)).client
  await onA.subscribe('system')
  const started = Date.now()
  const published = publishSteadily(b.http)
  const received: Frame[] = []
  await receive(onA, received, 300)

  process.kill(a.pid, 'SIGKILL')
  t.equal(await onA.closed, 1006, 'A is gone without a close frame')
  await a.stop()
  // A load balancer would now send the client to B.
  const onB = (await connect(t, `${b.ws}/public`)).client
  const since = received[received.length - 1].id
  t.same((await onB.subscribe({ stream: 'system', since })).gaps, [], 'history on Redis reaches back to the last message seen on A')
  await receive(onB, received, TOTAL)

  t.ok((await published).every((status) => status === 202), 'every publish was accepted')
  t.comment(`published at ${Math.round(TOTAL * 1000 / (Date.now() - started))} messages/s`)
  t.same(received.map((m) => m.data.n), Array.from({ length: TOTAL }, (_, n) => n), 'all 1,000, in order, once each')
  t.ok(received.every((m, i) => i === 0 || compareMessageIds(received[i - 1].id, m.id) < 0), 'ids increase across the move')
  await onB.request({ event: 'ping' }, 'pong')
  t.same(onB.messages(), [], 'nothing more')
})
