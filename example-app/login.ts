import type { FastifyInstance } from 'fastify'

/** `POST /auth/login {"user","ttl"}` → `{"token"}`: the demo login, no password, signed with the app's @fastify/jwt. */
export async function loginRoute (app: FastifyInstance): Promise<void> {
  app.post('/auth/login', {
    schema: {
      body: {
        type: 'object',
        required: ['user'],
        additionalProperties: false,
        properties: {
          user: { type: 'string', minLength: 1, maxLength: 256 },
          ttl: { type: 'integer', minimum: 1, maximum: 86400, default: 3600 }
        }
      }
    }
  }, async (request) => {
    const { user, ttl } = request.body as { user: string, ttl: number }
    return { token: app.jwt.sign({ sub: user }, { expiresIn: ttl }) }
  })
}
