import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import webpush from 'web-push'
import { SMTPServer } from 'smtp-server'
import { build, publish } from './helpers.js'
import { pushService } from './push-service.js'
import type { Test } from './abstract/store-suite.js'
import type { NotifyOfflineOptions, OfflineEmailMessage, OfflineMessage } from '../plugins/index.js'

interface Mail { to: string[], from: string, raw: string }

/** A real SMTP server on loopback: receives what nodemailer sends, answers each recipient as told. */
async function smtpServer (t: Test): Promise<{ url: string, mails: Mail[], refuse: Map<string, number[]>, attempts: Map<string, number> }> {
  const mails: Mail[] = []
  const refuse = new Map<string, number[]>()
  const attempts = new Map<string, number>()
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo (address, _session, callback) {
      attempts.set(address.address, (attempts.get(address.address) ?? 0) + 1)
      const code = refuse.get(address.address)?.shift()
      if (code === undefined) return callback()
      callback(Object.assign(new Error(code < 500 ? 'mailbox busy, try later' : 'no such mailbox'), { responseCode: code }))
    },
    onData (stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.once('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), from: (session.envelope.mailFrom as { address: string }).address, raw: Buffer.concat(chunks).toString() })
        callback()
      })
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server.server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`, mails, refuse, attempts }
}

const vapid = { ...webpush.generateVAPIDKeys(), subject: 'mailto:ops@shop.example' }
const addresses: Record<string, string | null> = { bob: 'bob@shop.example', carol: 'carol@shop.example', dave: null, erin: 'erin@shop.example', fay: 'fay@shop.example' }
const orderMail = (m: OfflineEmailMessage): { subject: string, text: string, html: string } => ({
  subject: `Order ${(m.data as { orderId: string }).orderId} ${(m.data as { status: string }).status}`,
  text: `Hello ${m.user}, your order is ${(m.data as { status: string }).status} (message ${m.id}).`,
  html: `<p>Hello ${m.user}</p>`
})

t.test('e-mail through a real SMTP server: per-stream templates, the address from the app, preferences, retries, once per message', async (t) => {
  const smtp = await smtpServer(t)
  const svc = await pushService(t, vapid.publicKey, vapid.subject)
  const heard: Array<{ users: string[], message: OfflineMessage }> = []
  const preferences: Record<string, string> = { bob: 'email', carol: 'both', dave: 'email', erin: 'email', fay: 'email' }
  const offline: NotifyOfflineOptions = {
    streams: {
      order: { email: orderMail },
      reward: { email: (m) => ({ subject: 'You earned points', text: `${(m.data as { points: number }).points} points for ${m.user}` }) }
    },
    push: { vapid, agent: svc.agent, allowedEndpointHosts: [svc.host] },
    email: { transport: smtp.url, from: '"Shop" <notify@shop.example>', address: async (user) => addresses[user] },
    preference: async (user) => preferences[user] as 'email',
    retry: { baseDelay: 20 }
  }
  const edge = await build(t, { offline, onOffline: (users, message) => { heard.push({ users, message }) } })
  await edge.app.notifyOffline.subscriptions!.add('carol', svc.subscription('carol'), 10)

  await t.test('email and both, with the stream template; no address, no mail', async (t) => {
    const { body } = await publish(edge.http, { stream: 'order', users: ['bob', 'carol', 'dave'], data: { orderId: 'o-42', status: 'shipped' } })
    t.same(body.offline, ['bob', 'carol', 'dave'])
    await edge.app.notifyOffline.idle()
    t.same(heard[0].message.fallback, { bob: 'email', carol: 'both', dave: 'email' })
    t.same(smtp.mails.map((mail) => mail.to).sort(), [['bob@shop.example'], ['carol@shop.example']])
    const bob = smtp.mails.find((mail) => mail.to[0] === 'bob@shop.example')!
    t.equal(bob.from, 'notify@shop.example')
    t.match(bob.raw, /Subject: Order o-42 shipped/)
    t.match(bob.raw, `Hello bob, your order is shipped (message ${(body.ids as string[])[0]}).`)
    t.match(bob.raw, /text\/html/)
    t.same(svc.received.map((push) => push.name), ['carol'], 'both: carol got the push too')
    t.same(edge.app.notifyOffline.stats.email, { sent: 2, failed: 0, retried: 0, duplicate: 0 })
  })

  await t.test('another stream, another template', async (t) => {
    await publish(edge.http, { stream: 'reward', user: 'bob', data: { points: 7 } })
    await edge.app.notifyOffline.idle()
    t.match(smtp.mails.at(-1)!.raw, /Subject: You earned points[\s\S]*7 points for bob/)
  })

  await t.test('a 4xx is retried, a 5xx is not', async (t) => {
    smtp.refuse.set('erin@shop.example', [451])
    smtp.refuse.set('fay@shop.example', [550])
    await publish(edge.http, { stream: 'order', users: ['erin', 'fay'], data: { orderId: 'o-43', status: 'paid' } })
    await edge.app.notifyOffline.idle()
    t.same([smtp.attempts.get('erin@shop.example'), smtp.attempts.get('fay@shop.example')], [2, 1])
    t.ok(smtp.mails.some((mail) => mail.to[0] === 'erin@shop.example'))
    t.notOk(smtp.mails.some((mail) => mail.to[0] === 'fay@shop.example'))
    t.same(edge.app.notifyOffline.stats.email, { sent: 4, failed: 1, retried: 1, duplicate: 0 })
  })

  await t.test('the same message handed over twice is mailed once', async (t) => {
    const before = smtp.mails.length
    const { body } = await publish(edge.http, { stream: 'order', user: 'bob', data: { orderId: 'o-44', status: 'placed' } })
    edge.app.notifyOfflineHandoff!(['bob'], { stream: 'order', data: { orderId: 'o-44', status: 'placed' }, ids: [body.id as string] }, () => {})
    await edge.app.notifyOffline.idle()
    t.equal(smtp.mails.length, before + 1)
    t.equal(edge.app.notifyOffline.stats.email.duplicate, 1)
  })
})

t.test('an address hook that throws and an SMTP server that is gone count as failed', async (t) => {
  const edge = await build(t, {
    offline: {
      streams: { order: { email: orderMail } },
      email: { transport: { host: '127.0.0.1', port: 1, secure: false }, from: 'notify@shop.example', address: (user) => { if (user === 'bob') throw new Error('directory down'); return `${user}@shop.example` } },
      preference: () => 'email'
    }
  })
  await publish(edge.http, { stream: 'order', users: ['bob', 'carol'], data: { orderId: 'o-1', status: 'placed' } })
  await edge.app.notifyOffline.idle()
  t.same(edge.app.notifyOffline.stats.email, { sent: 0, failed: 2, retried: 0, duplicate: 0 })
})
