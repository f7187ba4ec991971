import { once } from 'node:events'
import t from 'tap'
import webpush from 'web-push'
import { fileURLToPath } from 'node:url'
import { login, serverProcess, type ExampleProcess } from './example-process.js'
import { pushService } from './push-service.js'
import { redisServer } from './redis-server.js'

const KEY = 'notify-edge-development-api-key'
const vapid = webpush.generateVAPIDKeys()
const SUBJECT = 'mailto:ops@example.com'
// The build output (npm test builds first): it starts in a fraction of the time the TypeScript sources take.
const SERVER = fileURLToPath(new URL('../dist/example-app/server.js', import.meta.url))
const exampleApp = (t: Parameters<typeof serverProcess>[0], env: Record<string, string>): Promise<ExampleProcess> => serverProcess(t, process.execPath, [SERVER], env)

async function publish (app: ExampleProcess, key: string, orderId: string): Promise<{ status: number, replayed: string | null, body: Record<string, any> }> {
  const res = await fetch(`${app.http}/notifications`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': KEY, 'idempotency-key': key },
    body: JSON.stringify({ stream: 'order', user: 'bob', data: { orderId, status: 'placed' } })
  })
  return { status: res.status, replayed: res.headers.get('idempotent-replayed'), body: await res.json() as Record<string, any> }
}

// At most once: a copy is claimed before it is sent, and neither the claim nor the send survives
// the process. An edge killed with the push in flight never has it sent again by anyone.
t.test('the example app pushes through a CA it trusts by NODE_EXTRA_CA_CERTS; killed between publish and push, the message is not pushed twice', async (t) => {
  const redis = await redisServer(t)
  const svc = await pushService(t, vapid.publicKey, SUBJECT)
  const env = {
    REDIS_URL: redis.url,
    VAPID_PUBLIC_KEY: vapid.publicKey,
    VAPID_PRIVATE_KEY: vapid.privateKey,
    VAPID_SUBJECT: SUBJECT,
    PUSH_ENDPOINT_HOSTS: svc.host,
    NODE_EXTRA_CA_CERTS: svc.certPath
  }
  const a = await exampleApp(t, env)
  const res = await fetch(`${a.http}/push/subscriptions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await login(a.http, 'bob')}`, 'content-type': 'application/json' },
    body: JSON.stringify(svc.subscription('bob'))
  })
  t.same([res.status, await res.json()], [201, { subscriptions: 1 }])

  svc.behave('bob', 'hang')
  const first = await publish(a, 'order-1-placed', 'order-1')
  t.same([first.status, first.body.online], [202, false])
  const [inFlight] = await svc.waitFor(1)
  t.equal(JSON.parse(inFlight.payload).id, first.body.id, 'decrypted in the test: the edge encrypted for the subscription and trusted the CA')
  a.child.kill('SIGKILL')
  await once(a.child, 'exit')

  const b = await exampleApp(t, env)
  const again = await publish(b, 'order-1-placed', 'order-1')
  t.same([again.status, again.replayed, again.body], [202, 'true', first.body], 'the retry is answered from the idempotency key: nothing published, nothing pushed')
  const second = await publish(b, 'order-2-placed', 'order-2')
  t.equal(second.body.online, false)
  await svc.waitFor(2)
  t.same(svc.received.map((push) => JSON.parse(push.payload).id), [first.body.id, second.body.id], 'each message pushed once, the first never again')
  t.same(svc.errors, [])
  svc.release()
})
