import t from 'tap'
import Fastify from 'fastify'
import { notifyEdge } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'
import { runRolling } from '../bench/rolling.js'
import { API_KEY, SECRET, urls } from './helpers.js'
import { sharedRedis } from './redis-server.js'

// A rolling restart under load at a size that fits CI: 300 SDK clients on three instances,
// each drained (1001) and replaced in turn while keyed messages are published at 100/s.
// Everything published reaches every client it was meant for, once, without gaps: what history
// holds is replayed (docs/reliability.md). The full-size run is `npm run bench:rolling`.

t.test('300 clients across a rolling restart of three instances: nothing lost, nothing twice, no gap', async (t) => {
  const { url, prefix } = await sharedRedis(t)
  const signer = Fastify()
  t.teardown(() => signer.close())
  await signer.register(notifyEdge, { jwt: { secret: SECRET }, streams: STREAMS, tickets: false, routes: [] })
  const result = await runRolling({
    clients: 300,
    rate: 100,
    // One in 10 to the public stream: 10 a second, so that a client away for a few seconds finds
    // what it missed within the stream's 100 messages of history (more would be a true `gap`).
    publicEvery: 10,
    instances: 3,
    apiKey: API_KEY,
    token: (user) => signer.jwt.sign({ sub: user }, { expiresIn: '1h' }),
    async start () {
      const app = Fastify()
      await app.register(notifyEdge, {
        jwt: { secret: SECRET },
        streams: STREAMS,
        redis: url,
        topicPrefix: prefix,
        publishApi: { apiKey: API_KEY },
        routes: [{ path: '/ws', drainWindow: 1000 }]
      })
      await app.listen({ port: 0, host: '127.0.0.1' })
      const { http, ws } = urls(app)
      return { http, ws, stop: () => app.close() }
    }
  })
  t.comment(JSON.stringify(result))
  t.ok(result.publishedPerSecond >= 50, `published at ${result.publishedPerSecond} a second (100 asked)`)
  t.ok(result.expected > 10_000, `${result.expected} deliveries expected`)
  t.equal(result.unanswered, 0, 'every publish was answered in the end')
  t.equal(result.silent, 0, 'no silent loss')
  t.equal(result.duplicates, 0, 'nothing shown twice')
  t.equal(result.gaps, 0, 'no gap: history held everything')
  t.equal(result.delivered, result.expected)
  t.ok(result.reconnects >= 300, `every client reconnected at least once (${result.reconnects})`)
})
