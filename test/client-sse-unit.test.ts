import t from 'tap'
import { resolveOptions } from '../client/options.js'
import { sseUrl } from '../client/sse.js'

t.test('sseUrl maps a WebSocket endpoint to its SSE route', async (t) => {
  t.equal(sseUrl(new URL('ws://a.example/ws?x=1')).href, 'http://a.example/sse')
  t.equal(sseUrl(new URL('wss://a.example/public')).href, 'https://a.example/public/sse')
  t.equal(sseUrl(new URL('wss://a.example/edge/')).href, 'https://a.example/edge/sse')
})

t.test('transport options are validated', async (t) => {
  const EventSource = class {} as unknown as NonNullable<Parameters<typeof resolveOptions>[0]['EventSource']>
  const WebSocket = class {} as unknown as NonNullable<Parameters<typeof resolveOptions>[0]['WebSocket']>
  t.equal(resolveOptions({ url: 'ws://a/ws', WebSocket }).transport, 'websocket', 'websocket by default')
  t.throws(() => resolveOptions({ url: 'ws://a/ws', WebSocket, transport: 'carrier-pigeon' as 'sse' }), { code: 'NOTIFY_CLIENT_INVALID_OPTION' })
  if (!('EventSource' in globalThis)) {
    t.throws(() => resolveOptions({ url: 'ws://a/ws', WebSocket, transport: 'auto' }), { code: 'NOTIFY_CLIENT_INVALID_OPTION' }, 'no EventSource (Node 20)')
  }
  t.throws(() => resolveOptions({ url: 'ws://a/ws', transport: 'sse', EventSource, sseUrl: 'ftp://a/sse' }), { code: 'NOTIFY_CLIENT_INVALID_OPTION' })
  const sse = resolveOptions({ url: 'ws://a/ws', transport: 'sse', EventSource, sseUrl: 'https://b/stream' })
  t.equal(sse.WebSocket, undefined, 'SSE needs no WebSocket')
  t.equal(sse.sseUrl?.host, 'b')
})
