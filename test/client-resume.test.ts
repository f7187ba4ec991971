import t from 'tap'
import type { StreamDefinition } from '../plugins/index.js'
import { build, ticket, token } from './helpers.js'
import { sdk, serverConnections, type Recorder } from './client-helpers.js'

const STREAMS: StreamDefinition[] = [
  { name: 'order', kind: 'private', history: { size: 500, ttl: 600 } },
  { name: 'small', kind: 'private', history: { size: 5, ttl: 600 } }
]

type Edge = Awaited<ReturnType<typeof build>>

async function publishNumbered (edge: Edge, stream: string, from: number, count: number): Promise<string[]> {
  const ids: string[] = []
  for (let n = from; n < from + count; n++) {
    ids.push(((await edge.app.notify.publish({ stream, user: 'alice', data: { n } })) as { id: string }).id)
  }
  return ids
}

async function messageIds (events: Recorder, count: number): Promise<string[]> {
  const ids: string[] = []
  while (ids.length < count) ids.push((await events.next('message')).id)
  return ids
}

/** A client whose reconnects wait until `open()` is called: what is published meanwhile is missed for sure. */
function gatedClient (t: { teardown: (fn: () => unknown) => void }, edge: Edge) {
  let gate: Promise<void> = Promise.resolve()
  let open = () => {}
  const client = sdk(t, edge, 'alice', {
    getTicket: async () => {
      await gate
      return ticket(edge.http, token(edge.app, 'alice'))
    }
  })
  return {
    ...client,
    close: () => { gate = new Promise((resolve) => { open = resolve }) },
    open: () => open()
  }
}

t.test('after the server drops the socket the client gets exactly the messages it missed, in order, then live ones', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const { events, close, open } = gatedClient(t, edge)
  events.subscribe('order')
  await events.next('connected')
  const [seen] = await publishNumbered(edge, 'order', 0, 1)
  t.equal((await events.next('message')).id, seen)

  close()
  for (const connection of serverConnections(edge.app)) connection.socket.terminate()
  await events.next('disconnected')
  const missed = await publishNumbered(edge, 'order', 1, 25)
  open()

  t.match(await events.next('connected'), { reconnect: true })
  t.same(await messageIds(events, 25), missed, 'every missed message once, in order')
  const live = await publishNumbered(edge, 'order', 26, 1)
  t.same(await messageIds(events, 1), live)
  t.same(events.taken('message'), [], 'nothing twice')
  t.same(events.taken('gap'), [])
})

t.test('messages published while the client reconnects arrive once each, in order', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const { events } = sdk(t, edge, 'alice', { backoff: { min: 5, max: 20 } })
  events.subscribe('order')
  await events.next('connected')
  const ids: string[] = []
  const drop = () => { for (const connection of serverConnections(edge.app)) connection.socket.terminate() }
  for (let n = 0; n < 60; n++) {
    // Drops twice mid-stream; publishing goes on while the client reconnects and resumes.
    if (n === 15) drop()
    if (n === 35) {
      t.match(await events.next('connected'), { reconnect: true })
      drop()
    }
    ids.push(...await publishNumbered(edge, 'order', n, 1))
  }
  t.match(await events.next('connected'), { reconnect: true })
  t.same(await messageIds(events, 60), ids, 'all 60 in order')
  await edge.app.notify.publish({ stream: 'order', user: 'alice', data: { n: 'last' } })
  t.match(await events.next('message'), { data: { n: 'last' } })
  t.same(events.taken('message'), [], 'no duplicate')
})

t.test('a gap event tells the application when history no longer reaches back', async (t) => {
  const edge = await build(t, { streams: STREAMS })
  const { events, close, open } = gatedClient(t, edge)
  events.subscribe('small')
  events.subscribe('order')
  await events.next('connected')
  await publishNumbered(edge, 'small', 0, 1)
  await events.next('message')

  close()
  for (const connection of serverConnections(edge.app)) connection.socket.terminate()
  await events.next('disconnected')
  await publishNumbered(edge, 'small', 1, 10)
  open()

  t.same(await events.next('gap'), { stream: 'small' }, 'only the stream that lost history')
  await events.next('connected')
  const live = await publishNumbered(edge, 'small', 11, 1)
  t.same(await messageIds(events, 1), live, 'live again after the gap')
  t.same(events.taken('gap'), [])
})
