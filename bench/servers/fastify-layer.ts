import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import fastifyWebsocket from '@fastify/websocket'
import type WebSocket from 'ws'
import { SECRET } from '../lib/shared.js'
import type { TicketDesk } from './tickets.js'

// The plain server's HTTP layer on the libraries notify-edge is built on, for `ws.js --http
// fastify` (contender `fastify-floor`): Fastify routes the ticket request and the handshake,
// @fastify/jwt (fast-jwt) verifies the bearer token, @fastify/websocket upgrades; the tickets, the
// protocol and the topics are the plain server's own code. What it costs beyond the plain server
// is what those libraries cost for a handshake: the floor under notify-edge's figure
// (docs/benchmarks.md). Each piece is used the leanest way Fastify allows, as notify-edge uses it.

declare module 'fastify' {
  interface FastifyRequest { floorUser: string }
}

const TICKET_RESPONSE = {
  200: { type: 'object', properties: { ticket: { type: 'string' }, expiresIn: { type: 'integer' } } }
}

const unauthorized = (): Error => Object.assign(new Error('unauthorized'), { statusCode: 401 })

/** Serves `desk`'s tickets and the WebSocket handshake on Fastify; `onConnection` gets each socket. */
export async function listenOnFastify (desk: TicketDesk, onConnection: (ws: WebSocket, user: string) => void): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify({ logger: false })
  await app.register(fastifyJwt, { secret: SECRET })
  await app.register(fastifyWebsocket, { options: { perMessageDeflate: false, maxPayload: 65536, clientTracking: false } })
  // `app.jwt.verify`, as notify-edge calls it: `request.jwtVerify` costs more.
  const userOf = (token: string): string => {
    try {
      return app.jwt.verify<{ sub: string }>(token).sub
    } catch {
      throw unauthorized()
    }
  }
  app.post('/ws/ticket', { schema: { response: TICKET_RESPONSE } }, async (request) => {
    const header = request.headers.authorization
    if (header?.startsWith('Bearer ') !== true) throw unauthorized()
    return desk.issue(userOf(header.slice(7)))
  })
  app.decorateRequest('floorUser', '')
  app.get('/ws', {
    websocket: true,
    onRequest: async (request) => {
      const { ticket, token } = request.query as { ticket?: string, token?: string }
      const user = desk.authenticate(ticket, token, userOf)
      if (user === null) throw unauthorized()
      request.floorUser = user
    }
  }, (socket, request) => onConnection(socket, request.floorUser))
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port }
}
