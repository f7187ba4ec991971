import t from 'tap'
import WebSocket from 'ws'
import { backoffDelay, drainDelay, penaltyDelay } from '../client/backoff.js'
import { retryDelay } from '../client/close-codes.js'
import { isNewer } from '../client/message-id.js'
import { socketUrl } from '../client/socket.js'
import { connect, NotifyClientError, type NotifyClientOptions } from '../client/index.js'

const bounds = { min: 500, max: 20000 }

t.test('backoff is uniform between min and a ceiling that doubles per attempt up to max', async (t) => {
  const ceilings = [1000, 2000, 4000, 8000, 16000, 20000, 20000]
  ceilings.forEach((ceiling, attempt) => {
    t.equal(backoffDelay(attempt, bounds, () => 0), 500, `attempt ${attempt} at its shortest`)
    t.equal(backoffDelay(attempt, bounds, () => 0.5), Math.round(500 + (ceiling - 500) / 2), `attempt ${attempt} halfway`)
    t.equal(backoffDelay(attempt, bounds, () => 0.999999), ceiling, `attempt ${attempt} at its longest`)
  })
  t.equal(backoffDelay(5000, bounds, () => 1), 20000, 'no overflow after many attempts')
  t.equal(backoffDelay(3, { min: 100, max: 100 }, () => 0.7), 100, 'min = max is a constant delay')
})

t.test('jittered delays spread over the whole range', async (t) => {
  const delays = Array.from({ length: 2000 }, () => backoffDelay(2, bounds))
  t.ok(delays.every((d) => d >= 500 && d <= 4000))
  t.ok(Math.min(...delays) < 700 && Math.max(...delays) > 3800, 'both ends are reached')
})

t.test('close codes decide whether and when to reconnect', async (t) => {
  t.equal(retryDelay(4003, 0, bounds), null, '4003 forbidden is terminal')
  t.equal(retryDelay(1009, 0, bounds), null, '1009 would resend the same frame')
  t.equal(retryDelay(1008, 0, bounds, () => 0), 10000, '1008 waits at least max/2')
  t.equal(penaltyDelay(bounds, () => 1), 20000)
  for (const code of [1000, 1001, 1005, 1006, 1011, 1012, 1013, 4000, 4001]) {
    t.equal(retryDelay(code, 1, bounds, () => 1), 2000, `${code} backs off`)
  }
})

t.test('after a 1001 the first wait spreads over the drain window', async (t) => {
  t.equal(retryDelay(1001, 0, bounds, () => 0), 500, 'at its shortest: min')
  t.equal(retryDelay(1001, 0, bounds, () => 1), 3000, 'at its longest: the default 3 s window')
  t.equal(retryDelay(1001, 0, { ...bounds, drain: 8000 }, () => 0.5), 4250)
  t.equal(drainDelay({ min: 500, max: 1000, drain: 100 }, () => 1), 500, 'a window under min is min')
  t.equal(retryDelay(1006, 0, bounds, () => 1), 1000, 'other codes: the usual backoff')
})

t.test('message ids compare as <ms>-<seq> pairs', async (t) => {
  t.ok(isNewer('1-0', undefined))
  t.ok(isNewer('1700000000001-0', '1700000000000-9'))
  t.ok(isNewer('1700000000000-10', '1700000000000-9'), 'seq compares as a number')
  t.notOk(isNewer('1700000000000-9', '1700000000000-9'))
  t.notOk(isNewer('999-0', '1700000000000-0'))
  t.ok(isNewer('b', 'a'), 'an id of another shape is new unless repeated')
  t.notOk(isNewer('a', 'a'))
})

t.test('connect() rejects bad options with a coded error', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['no options', undefined],
    ['ftp url', { url: 'ftp://example.com/ws' }],
    ['unparsable url', { url: 'ws://[' }],
    ['url not a string', { url: 42 }],
    ['zero backoff.min', { url: 'ws://localhost/ws', backoff: { min: 0 } }],
    ['min over max', { url: 'ws://localhost/ws', backoff: { min: 30000 } }],
    ['fractional ping', { url: 'ws://localhost/ws', pingInterval: 1.5 }],
    ['getTicket not a function', { url: 'ws://localhost/ws', getTicket: 'abc' }],
    ['no urls', { url: [] }],
    ['a bad url among several', { url: ['ws://localhost/ws', 'ftp://x/ws'] }],
    ['zero backoff.drain', { url: 'ws://localhost/ws', backoff: { drain: 0 } }]
  ]
  for (const [name, options] of bad) {
    t.throws(() => connect({ WebSocket, ...(options as object) } as unknown as NotifyClientOptions), { code: 'NOTIFY_CLIENT_INVALID_OPTION' }, name)
  }
  t.throws(() => connect(null as unknown as NotifyClientOptions), NotifyClientError)
})

t.test('connect() without a WebSocket on Node 20 says how to pass one', { skip: 'WebSocket' in globalThis && 'this Node has a global WebSocket' }, async (t) => {
  t.throws(() => connect({ url: 'ws://localhost/ws' }), { code: 'NOTIFY_CLIENT_NO_WEBSOCKET' })
})

t.test('subscribe() rejects a bad stream or handler', async (t) => {
  const client = connect({ url: 'ws://127.0.0.1:9/ws', WebSocket, backoff: { min: 10000, max: 10000 } })
  client.on('error', () => {})
  t.teardown(() => client.close())
  t.throws(() => client.subscribe('', () => {}), { code: 'NOTIFY_CLIENT_INVALID_ARGUMENT' })
  t.throws(() => client.subscribe('order', null as unknown as () => void), { code: 'NOTIFY_CLIENT_INVALID_ARGUMENT' })
})

t.test('endpoint URLs map http(s) to ws(s) and need to be absolute outside a browser', async (t) => {
  t.equal(socketUrl('https://example.com/ws')?.href, 'wss://example.com/ws')
  t.equal(socketUrl('http://example.com/ws')?.href, 'ws://example.com/ws')
  t.equal(socketUrl('wss://example.com/ws?x=1')?.href, 'wss://example.com/ws?x=1')
  t.equal(socketUrl('/ws'), null)
})
