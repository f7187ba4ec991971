import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { NO_CLAIMS, type Principal } from '../plugins/principal.js'
import { mayJoinRoom } from './streams.js'

// The demo page's rooms (the `room` channel) over HTTP: what a room said before the page came
// (history, after a load or reload), who is in, and a line posted for a page that cannot publish
// over its socket (SSE only receives). Each checks the room's rule as the channel does.

const ROOM = { type: 'string', pattern: '^[A-Za-z0-9_@.=-]{1,128}$' }

/** Whether a user may read and write a room; the `room` channel's rule, asked wherever it lives. */
export type MayJoin = (principal: Principal, room: string) => boolean | Promise<boolean>

export interface RoomRouteOptions {
  /** @default `mayJoinRoom`, in process (a split-out edge asks the order service instead) */
  mayJoin?: MayJoin
}

/** The Bearer JWT's user if they may use the room, or null after answering 401 or 403. */
async function signedIn (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, mayJoin: MayJoin): Promise<string | null> {
  let user: string
  try {
    const header = request.headers.authorization ?? ''
    // A promise when the key comes from a JWKS, the claims otherwise.
    user = (await (app.jwt.verify<{ sub: string }>(header.replace(/^Bearer /, '')) as { sub: string } | Promise<{ sub: string }>)).sub
  } catch {
    await reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'a valid Bearer JWT is required' })
    return null
  }
  const { room } = request.params as { room: string }
  if (await mayJoin({ user, expiresAt: null, claims: NO_CLAIMS }, room)) return user
  await reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `not allowed in room ${room}` })
  return null
}

/**
 * `POST /rooms/:room/messages {"text":"…"}` publishes a chat line; `GET /rooms/:room/messages`
 * answers the room's kept history (what a page shows after a reload, before live lines);
 * `GET /rooms/:room/members` lists who is in.
 */
export async function roomRoutes (app: FastifyInstance, opts: RoomRouteOptions = {}): Promise<void> {
  const mayJoin = opts.mayJoin ?? ((principal, room) => mayJoinRoom(principal, { key: room }))
  app.post('/rooms/:room/messages', {
    schema: {
      params: { type: 'object', required: ['room'], properties: { room: ROOM } },
      body: { type: 'object', required: ['text'], additionalProperties: false, properties: { text: { type: 'string', minLength: 1, maxLength: 500 } } }
    }
  }, async (request, reply) => {
    const user = await signedIn(app, request, reply, mayJoin)
    if (user === null) return reply
    const { room } = request.params as { room: string }
    const { text } = request.body as { text: string }
    return reply.code(202).send(await app.notify.publish({ stream: 'room', key: room, data: { text, from: user } }))
  })

  app.get('/rooms/:room/messages', {
    schema: { params: { type: 'object', required: ['room'], properties: { room: ROOM } } }
  }, async (request, reply) => {
    if (await signedIn(app, request, reply, mayJoin) === null) return reply
    const { room } = request.params as { room: string }
    const stream = app.notify.streams.get('room')!
    // From the topic's start: complete while nothing was trimmed, else none (a longer history would page).
    const kept = await app.notifyHistory.store.read(stream.topic(room), '', stream.history!, stream.history!.size)
    return { messages: (kept ?? []).map((message) => JSON.parse(message.frame) as unknown) }
  })

  app.get('/rooms/:room/members', {
    schema: { params: { type: 'object', required: ['room'], properties: { room: ROOM } } }
  }, async (request, reply) => {
    if (await signedIn(app, request, reply, mayJoin) === null) return reply
    const { room } = request.params as { room: string }
    const { members = [] } = await app.notify.presence({ stream: 'room', key: room })
    return { members }
  })
}
