import { createHmac } from 'node:crypto'
import Fastify from 'fastify'
import t from 'tap'
import { BackendClient, notifyBackend, remoteAuthorize, signCallerToken, verifyCallerToken } from '../plugins/index.js'
import { publishErrorCode } from '../plugins/upstream/answers.js'
import { Bucket, UserBuckets } from '../plugins/upstream/rate.js'
import { urls } from './helpers.js'

const SECRET = 'a-caller-secret-of-at-least-32-characters'
const alice = { user: 'alice', expiresAt: null, claims: {} }

t.test('a bucket spends up to its burst, refills at its rate, and says when it is full again', async (t) => {
  const rate = { perSecond: 10, burst: 2 }
  const bucket = new Bucket()
  t.same([bucket.take(rate, 0), bucket.take(rate, 0), bucket.take(rate, 0)], [true, true, false])
  t.notOk(bucket.idle(100))
  t.ok(bucket.take(rate, 100), 'one more token after 100 ms')
  t.ok(bucket.idle(1000))
})

t.test('user buckets are forgotten once full again', async (t) => {
  const users = new UserBuckets({ perSecond: 10, burst: 1 }, 5)
  t.teardown(() => users.close())
  t.ok(users.take('alice', performance.now()))
  t.notOk(users.take('alice', performance.now()))
  t.equal(users.size, 1)
  users.sweep(performance.now() + 1000)
  t.equal(users.size, 0)
  // The timer sweeps too.
  users.take('bob', performance.now())
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(users.size, 0)
})

t.test('publish errors map to frame codes', async (t) => {
  t.equal(publishErrorCode({ code: 'FST_NOTIFY_UNKNOWN_STREAM', statusCode: 400 }), 'UNKNOWN_STREAM')
  t.equal(publishErrorCode({ statusCode: 409 }), 'IN_PROGRESS')
  t.equal(publishErrorCode({ statusCode: 503 }), 'UNAVAILABLE')
  t.equal(publishErrorCode({ statusCode: 400 }), 'BAD_REQUEST')
  t.equal(publishErrorCode(new Error('x')), 'INTERNAL')
})

t.test('a caller token with a payload that is not JSON is refused', async (t) => {
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
  const input = `${header}.${Buffer.from('not json').toString('base64url')}`
  const token = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
  t.equal(verifyCallerToken(SECRET, token), null)
  const anonymous = signCallerToken(SECRET, { user: null, expiresAt: null, claims: {} }, 30)
  t.same(verifyCallerToken(SECRET, anonymous)?.user, null, 'an anonymous caller')
})

t.test('remoteAuthorize asks the backend, and refuses when it cannot', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(notifyBackend, { callerSecret: SECRET })
  app.notifyBackend.authorizeHook('/hooks/room', async (principal, target) => principal.user === 'alice' && target.key === 'lobby')
  app.post('/broken', async () => { throw new Error('kaput') })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = new BackendClient({ callerSecret: SECRET, callerTokenTtl: 30, connections: 2, maxAnswerBytes: 1024 })
  t.teardown(() => client.close(100))
  const errors: unknown[] = []
  const authorize = remoteAuthorize(client, `${urls(app).http}/hooks/room`, 500, (err) => errors.push(err))
  t.equal(await authorize(alice, { stream: 'room', key: 'lobby' }), true)
  t.equal(await authorize(alice, { stream: 'room', key: 'other' }), false)
  t.equal(await authorize({ ...alice, user: 'bob' }, { stream: 'room', key: 'lobby' }), false)
  t.equal(await remoteAuthorize(client, `${urls(app).http}/broken`, 500, (err) => errors.push(err))(alice, { stream: 'room' }), false)
  t.equal(errors.length, 1, 'the failure is reported')
  const big = new BackendClient({ callerSecret: SECRET, callerTokenTtl: 30, connections: 2, maxAnswerBytes: 4 })
  t.teardown(() => big.close(100))
  await t.rejects(big.send({ method: 'POST', url: `${urls(app).http}/hooks/room`, principal: alice, body: { target: { stream: 'room', key: 'lobby' } }, timeout: 500 }), /over 4 bytes/)
})

t.test('a hook\'s verdict becomes a decision; anything else refuses', async (t) => {
  const { decisionOf } = await import('../plugins/upstream/gates.js')
  t.same(decisionOf(true, 1), { allow: true, data: 1 })
  t.same(decisionOf({ allow: true }, 1), { allow: true, data: 1 })
  t.same(decisionOf({ allow: true, data: 2 }, 1), { allow: true, data: 2 })
  t.same(decisionOf(false, 1), { allow: false, code: 'FORBIDDEN', message: 'not allowed to publish' })
  t.same(decisionOf({ allow: false }, 1), { allow: false, code: 'FORBIDDEN', message: 'not allowed to publish' })
  t.same(decisionOf({ allow: false, reason: 'bad reason!', message: 'm' }, 1), { allow: false, code: 'FORBIDDEN', message: 'm' }, 'a reason that is not a code is left out')
  t.same(decisionOf({ allow: false, reason: 'ok.code', message: 'x'.repeat(300) }, 1), { allow: false, code: 'FORBIDDEN', message: 'x'.repeat(256), reason: 'ok.code' })
  t.same(decisionOf({ allow: 'yes' }, 1), { allow: false, code: 'FORBIDDEN', message: 'the publish hook gave no verdict' })
  t.same(decisionOf(null, 1), { allow: false, code: 'FORBIDDEN', message: 'the publish hook gave no verdict' })
})
