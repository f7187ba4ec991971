import t from 'tap'
import { build, connectUser, publish, ticket, token, type Edge } from './helpers.js'
import { SseClient } from './sse-helpers.js'

const SSE_SECRET = 'an-sse-secret-that-is-at-least-32-characters'

async function edge (t: Parameters<typeof build>[0], sse: Record<string, unknown> = {}): Promise<Edge> {
  return build(t, { sse: { secret: SSE_SECRET, ...sse } })
}

async function open (t: Parameters<typeof build>[0], url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const client = await SseClient.open(url, headers)
  t.teardown(() => client.close())
  return client
}

async function access (e: Edge, user: string, expiresIn: number | string = '1h'): Promise<{ status: number, body: Record<string, any> }> {
  const res = await fetch(`${e.http}/sse/access`, { method: 'POST', headers: { authorization: `Bearer ${token(e.app, user, expiresIn)}` } })
  return { status: res.status, body: await res.json() as Record<string, any> }
}

t.test('GET /sse sends welcome, subscribed and each message as the WebSocket frame, with an id', async (t) => {
  const e = await edge(t)
  await publish(e.http, { stream: 'promotional', data: { before: true } })
  const sse = await open(t, `${e.http}/sse?streams=order,promotional&ticket=${await ticket(e.http, token(e.app, 'alice'))}`)
  t.equal(sse.status, 200)
  t.match(sse.headers['content-type'], /^text\/event-stream/)
  const welcome = await sse.next('welcome')
  t.equal(welcome.json.user, 'alice')
  t.equal(welcome.retry, 2000, 'welcome sets EventSource\'s reconnect delay')
  const subscribed = await sse.next('subscribed')
  t.same(subscribed.json.streams, ['order', 'promotional'])
  t.same(subscribed.json.gaps, [], 'a fresh response starts a stream with history at its latest id: a since, so gaps')
  const ws = await connectUser(t, e, 'alice')
  await ws.subscribe('order')
  t.equal((await publish(e.http, { stream: 'order', user: 'alice', data: { orderId: 'o1', status: 'placed' } })).status, 202)
  const message = await sse.next('message')
  const frame = await ws.event('message')
  t.same(message.json, frame, 'the same JSON as the WebSocket frame')
  t.equal(message.id?.split('.').length, 3, 'the id holds a seal and the position of each stream')
  t.equal(message.id?.split('.')[1], frame.id, 'order\'s position')
  t.match(message.id?.split('.')[2], /^\d+-\d+$/, 'promotional\'s position: its latest id when the response opened')
  t.equal(e.app.notifyStreams.get('/sse')?.connections.size, 1)
})

t.test('unknown and forbidden streams are error events; the response lives on for the others', async (t) => {
  const e = await edge(t)
  const sse = await open(t, `${e.http}/public/sse?streams=nope,order,promotional`)
  t.equal(sse.status, 200)
  const errors = await sse.until(() => sse.events.filter((ev) => ev.event === 'error').length === 2).then(() => sse.events.filter((ev) => ev.event === 'error').map((ev) => ev.json))
  t.same(errors.map((err) => [err.code, err.stream]), [['UNKNOWN_STREAM', 'nope'], ['FORBIDDEN', 'order']])
  t.same((await sse.next('subscribed')).json.streams, ['promotional'])
  await publish(e.http, { stream: 'promotional', data: { n: 1 } })
  t.same((await sse.next('message')).json.data, { n: 1 })
})

t.test('bad requests are refused before the stream starts', async (t) => {
  const e = await edge(t)
  const cases: Array<[string, number, string | undefined]> = [
    ['/sse?streams=order', 401, 'FST_NOTIFY_UNAUTHORIZED'],
    ['/sse?streams=order&ticket=not-a-ticket', 401, 'FST_NOTIFY_UNAUTHORIZED'],
    ['/sse?streams=order&access=forged.123.abc', 401, 'FST_NOTIFY_UNAUTHORIZED'],
    ['/public/sse', 400, 'FST_NOTIFY_BAD_SSE_REQUEST'],
    ['/public/sse?streams=,,', 400, 'FST_NOTIFY_BAD_SSE_REQUEST'],
    [`/public/sse?streams=${'x'.repeat(201)}`, 400, 'FST_NOTIFY_BAD_SSE_REQUEST'],
    [`/public/sse?streams=${Array.from({ length: 101 }, (_, i) => `s${i}`).join(',')}`, 400, 'FST_NOTIFY_BAD_SSE_REQUEST']
  ]
  for (const [path, status, code] of cases) {
    const sse = await open(t, `${e.http}${path}`)
    await sse.until(() => sse.ended)
    t.equal(sse.status, status, path.slice(0, 60))
    t.equal(sse.body?.code, code, path.slice(0, 60))
  }
  const refused = await open(t, `${e.http}/public/sse?streams=promotional`, { accept: 'text/event-stream;q=0, application/json' })
  t.equal(refused.status, 406, 'a client that refuses text/event-stream')
})

t.test('an access token survives reconnects, for its user only, until it expires', async (t) => {
  const e = await edge(t, { routes: [{ path: '/sse', accessTtl: 1 }] })
  const granted = await access(e, 'alice')
  t.equal(granted.status, 200)
  t.ok(granted.body.expiresAt <= Date.now() + 1000, 'accessTtl caps it')
  t.equal((await access(e, 'alice', -10)).status, 401, 'an expired JWT gets none')
  const missing = await fetch(`${e.http}/sse/access`, { method: 'POST' })
  t.equal(missing.status, 401)
  for (let i = 0; i < 2; i++) {
    const sse = await open(t, `${e.http}/sse?streams=order&access=${granted.body.access as string}`)
    t.equal((await sse.next('welcome')).json.user, 'alice', `connection ${i + 1} with one token`)
    sse.close()
  }
  const tampered = granted.body.access.replace(/^[^.]+/, Buffer.from('bob').toString('base64url'))
  t.equal((await open(t, `${e.http}/sse?streams=order&access=${tampered as string}`)).status, 401, 'another user\'s name in it breaks the MAC')
  const sse = await open(t, `${e.http}/sse?streams=order&access=${granted.body.access as string}`)
  const expired = await sse.next('expired', 0, 4000)
  t.equal(expired.json.event, 'expired', 'the response ends with expired when the token does')
  await sse.until(() => sse.ended)
  const late = await open(t, `${e.http}/sse?streams=order&access=${granted.body.access as string}`)
  t.equal(late.status, 401)
})

t.test('a comment line keeps an idle response alive', async (t) => {
  const e = await edge(t, { routes: [{ path: '/public/sse', anonymous: true, keepAliveInterval: 50 }] })
  const sse = await open(t, `${e.http}/public/sse?streams=promotional`)
  await sse.until(() => sse.comments >= 2)
  t.pass('comments arrive')
})

t.test('app.close() ends every response with a jittered retry, so browsers reconnect elsewhere', async (t) => {
  const e = await edge(t)
  const sse = await open(t, `${e.http}/public/sse?streams=promotional`)
  await sse.next('subscribed')
  await e.app.close()
  await sse.until(() => sse.ended)
  t.equal(e.app.notifyStreams.get('/public/sse')?.connections.size, 0)
  t.match(sse.headers.connection ?? 'keep-alive', /keep-alive|close/)
})

t.test('registration refuses bad options with coded errors', async (t) => {
  const { registrationError } = await import('./helpers.js')
  for (const sse of [{ secret: 'short' }, { routes: [{ path: 'sse' }] }, { routes: [{ keepAliveInterval: 20_000 }] }, { routes: [{ path: '/ws' }] }]) {
    t.equal((await registrationError({ sse }))?.code, 'FST_NOTIFY_INVALID_OPTION', JSON.stringify(sse))
  }
})
