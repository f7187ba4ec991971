import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

// The chat of the demo page's rooms (the `room` channel). Until clients publish over their socket
// (SPEC section 13), the page posts its chat lines here and this route publishes them for the
// signed-in user: replace it with client publish, keeping the page's handling of `message` frames.

const ROOM = { type: 'string', pattern: '^[A-Za-z0-9_@.=-]{1,128}$' }

/** The Bearer JWT's user, or null after answering 401. */
async function signedIn (app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<string | null> {
  try {
    const header = request.headers.authorization ?? ''
    // A promise when the key comes from a JWKS, the claims otherwise.
    return (await (app.jwt.verify<{ sub: string }>(header.replace(/^Bearer /, '')) as { sub: string } | Promise<{ sub: string }>)).sub
  } catch {
    await reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'a valid Bearer JWT is required' })
    return null
  }
}

/**
 * `POST /rooms/:room/messages {"text":"…"}` publishes a chat line; `GET /rooms/:room/messages`
 * answers the room's kept history (what a page shows after a reload, before live lines);
 * `GET /rooms/:room/members` lists who is in.
 */
export async function roomRoutes (app: FastifyInstance): Promise<void> {
  app.post('/rooms/:room/messages', {
    schema: {
      params: { type: 'object', required: ['room'], properties: { room: ROOM } },
      body: { type: 'object', required: ['text'], additionalProperties: false, properties: { text: { type: 'string', minLength: 1, maxLength: 500 } } }
    }
  }, async (request, reply) => {
    const user = await signedIn(app, request, reply)
    if (user === null) return reply
    const { room } = request.params as { room: string }
    const { text } = request.body as { text: string }
    return reply.code(202).send(await app.notify.publish({ stream: 'room', key: room, data: { text, from: user } }))
  })

  app.get('/rooms/:room/messages', {
    schema: { params: { type: 'object', required: ['room'], properties: { room: ROOM } } }
  }, async (request, reply) => {
    if (await signedIn(app, request, reply) === null) return reply
    const { room } = request.params as { room: string }
    const stream = app.notify.streams.get('room')!
    // From the topic's start: complete while nothing was trimmed, else none (a longer history would page).
    const kept = await app.notifyHistory.store.read(stream.topic(room), '', stream.history!, stream.history!.size)
    return { messages: (kept ?? []).map((message) => JSON.parse(message.frame) as unknown) }
  })

  app.get('/rooms/:room/members', {
    schema: { params: { type: 'object', required: ['room'], properties: { room: ROOM } } }
  }, async (request, reply) => {
    if (await signedIn(app, request, reply) === null) return reply
    const { room } = request.params as { room: string }
    const { members = [] } = await app.notify.presence({ stream: 'room', key: room })
    return { members }
  })
}
