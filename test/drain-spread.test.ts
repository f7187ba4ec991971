import t from 'tap'
import { once } from 'node:events'
import WebSocket from 'ws'
import { build, registrationError } from './helpers.js'

// A draining instance spreads its 1001 closes (drainWindow, drainRate), so that its clients do
// not all reconnect and resume elsewhere in the same instant.

t.test('a drain spreads its 1001 closes over the window, at most drainRate a second', async (t) => {
  const edge = await build(t, { routes: [{ path: '/public', anonymous: true, drainWindow: 1000, drainRate: 100 }] })
  const sockets = await Promise.all(Array.from({ length: 100 }, async () => {
    const ws = new WebSocket(`${edge.ws}/public`)
    await once(ws, 'message')
    return ws
  }))
  const started = Date.now()
  const closes = sockets.map((ws) => once(ws, 'close').then(([code]) => ({ code: code as number, at: Date.now() - started })))
  await edge.app.close()
  const closed = await Promise.all(closes)
  t.same(new Set(closed.map((c) => c.code)), new Set([1001]))
  const times = closed.map((c) => c.at).sort((a, b) => a - b)
  t.ok(times[0] < 300, `the first closes at once (${times[0]} ms)`)
  t.ok(times.at(-1)! >= 800, `the last about a second later (${times.at(-1)} ms)`)
  t.ok(times.filter((at) => at < 500).length <= 70, 'not all in the first half')
})

t.test('a few sockets close at once: the window is only used at drainRate', async (t) => {
  const edge = await build(t, { routes: [{ path: '/public', anonymous: true }] })
  const sockets = await Promise.all(Array.from({ length: 5 }, async () => {
    const ws = new WebSocket(`${edge.ws}/public`)
    await once(ws, 'message')
    return ws
  }))
  const started = Date.now()
  const closes = sockets.map((ws) => once(ws, 'close'))
  await edge.app.close()
  await Promise.all(closes)
  t.ok(Date.now() - started < 1000, 'five sockets at the default 500/s: no spreading wait')
})

t.test('drain options are validated at registration', async (t) => {
  for (const route of [{ drainWindow: -1 }, { drainWindow: 1.5 }, { drainRate: 0 }]) {
    t.match(await registrationError({ routes: [{ path: '/ws', ...route }] }), { code: 'FST_NOTIFY_INVALID_OPTION' }, JSON.stringify(route))
  }
})
