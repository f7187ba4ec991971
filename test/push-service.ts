// A Web Push service on loopback for the tests: HTTPS with a self-signed certificate made by
// openssl, decrypting each push with the subscription's own keys (aes128gcm, http_ece) and
// verifying its VAPID JWT against the application server's public key, as a real one would.
import { execFileSync } from 'node:child_process'
import { createECDH, createPublicKey, randomBytes, verify, type ECDH } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { Agent, createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decrypt } from 'http_ece'
import type { PushSubscriptionJSON } from '../plugins/index.js'

type Test = { teardown: (fn: () => unknown) => void }

/** How the service answers pushes to one subscription. */
export type Behaviour =
  | { status: number, headers?: Record<string, string> }
  /** Never answers (the request stays open until the client gives up). */
  | 'hang'

export interface ReceivedPush {
  name: string
  /** The decrypted payload. */
  payload: string
  /** The VAPID JWT's claims, verified. */
  vapid: Record<string, unknown>
  headers: IncomingMessage['headers']
  /** Which request this was for this subscription, from 1. */
  attempt: number
}

interface Subscriber { ecdh: ECDH, auth: string }

export interface PushService {
  /** `https://127.0.0.1:<port>` */
  origin: string
  host: string
  /** The certificate, PEM, for `NODE_EXTRA_CA_CERTS` or an https Agent's `ca`. */
  certPath: string
  /** An https Agent trusting the certificate. */
  agent: Agent
  /** Pushes decrypted so far. */
  received: ReceivedPush[]
  /** Pushes refused: bad encryption or VAPID (a test expects none). */
  errors: string[]
  /** Requests open now, and the most ever open at once. */
  open: number
  maxOpen: number
  /** A new subscription named `name` (its endpoint ends with it). */
  subscription (name: string): PushSubscriptionJSON
  /** Answers for `name`'s pushes, in order; once used up, 201. */
  behave (name: string, ...answers: Behaviour[]): void
  /** While true, every request hangs until `release()`. */
  holdAll: boolean
  /** Answers every request left hanging with 201. */
  release (): void
  /** Resolves when `count` pushes (in all) have been received, or rejects after `timeout`. */
  waitFor (count: number, timeout?: number): Promise<ReceivedPush[]>
  /** Resolves when `count` requests are open at once. */
  waitOpen (count: number, timeout?: number): Promise<void>
}

/** Starts the service; closed (with its certificate removed) when the test ends. */
export async function pushService (t: Test, vapidPublicKey: string, subject: string): Promise<PushService> {
  const dir = mkdtempSync(join(tmpdir(), 'notify-push-'))
  const certPath = join(dir, 'cert.pem')
  const keyPath = join(dir, 'key.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath,
    '-out', certPath, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  const cert = readFileSync(certPath)
  const subscribers = new Map<string, Subscriber>()
  const behaviours = new Map<string, Behaviour[]>()
  const attempts = new Map<string, number>()
  const hanging = new Set<ServerResponse>()
  const waiters = new Set<() => void>()
  const vapidKey = createPublicKey({ key: { kty: 'EC', crv: 'P-256', ...point(vapidPublicKey) }, format: 'jwk' })

  const wake = (): void => { for (const waiter of waiters) waiter() }
  const server: Server = createServer({ cert, key: readFileSync(keyPath) }, (req, res) => {
    const chunks: Buffer[] = []
    service.open++
    service.maxOpen = Math.max(service.maxOpen, service.open)
    res.once('close', () => { service.open--; wake() })
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.once('end', () => {
      const name = req.url?.replace(/^\/push\//, '') ?? ''
      const subscriber = subscribers.get(name)
      if (req.method !== 'POST' || subscriber === undefined) {
        res.writeHead(404).end()
        return
      }
      const attempt = (attempts.get(name) ?? 0) + 1
      attempts.set(name, attempt)
      try {
        service.received.push({
          name,
          attempt,
          headers: req.headers,
          vapid: checkVapid(req.headers.authorization, vapidKey, vapidPublicKey, service.origin, subject),
          payload: checkEncoding(req.headers, Buffer.concat(chunks), subscriber)
        })
      } catch (err) {
        service.errors.push((err as Error).message)
        res.writeHead(400).end()
        return
      }
      const answer = service.holdAll ? 'hang' : behaviours.get(name)?.shift() ?? { status: 201 }
      if (answer === 'hang') hanging.add(res)
      else res.writeHead(answer.status, answer.headers).end()
      wake()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const agent = new Agent({ ca: cert, keepAlive: true })
  t.teardown(async () => {
    agent.destroy()
    server.closeAllConnections()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  async function until (done: () => boolean, timeout: number, what: string): Promise<void> {
    const deadline = Date.now() + timeout
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`push service: ${what} not within ${timeout} ms (received ${service.received.length}, open ${service.open})`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        const waiter = (): void => { clearTimeout(timer); waiters.delete(waiter); resolve() }
        waiters.add(waiter)
      })
    }
  }

  const service: PushService = {
    origin: `https://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    certPath,
    agent,
    received: [],
    errors: [],
    open: 0,
    maxOpen: 0,
    holdAll: false,
    subscription (name) {
      const ecdh = createECDH('prime256v1')
      ecdh.generateKeys()
      const auth = randomBytes(16).toString('base64url')
      subscribers.set(name, { ecdh, auth })
      return { endpoint: `${service.origin}/push/${name}`, expirationTime: null, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth } }
    },
    behave (name, ...answers) {
      behaviours.set(name, answers)
    },
    release () {
      for (const res of hanging) res.writeHead(201).end()
      hanging.clear()
    },
    async waitFor (count, timeout = 10_000) {
      await until(() => service.received.length >= count, timeout, `${count} pushes`)
      return service.received
    },
    waitOpen: (count, timeout = 10_000) => until(() => service.open >= count, timeout, `${count} open requests`)
  }
  return service
}

/** x and y of an uncompressed P-256 point given in base64url, as JWK wants them. */
function point (publicKey: string): { x: string, y: string } {
  const raw = Buffer.from(publicKey, 'base64url')
  return { x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33, 65).toString('base64url') }
}

/** RFC 8292: `vapid t=<JWT>, k=<public key>`, the JWT ES256-signed for this origin. */
function checkVapid (header: string | undefined, key: ReturnType<typeof createPublicKey>, publicKey: string, origin: string, subject: string): Record<string, unknown> {
  const match = /^vapid t=([^,\s]+),\s*k=(\S+)$/.exec(header ?? '')
  if (match === null) throw new Error(`push service: no VAPID authorization: ${header}`)
  if (match[2] !== publicKey) throw new Error('push service: VAPID k is not the application server key')
  const [head, body, signature] = match[1].split('.')
  const ok = verify('sha256', Buffer.from(`${head}.${body}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))
  if (!ok) throw new Error('push service: VAPID signature does not verify')
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>
  if (claims.aud !== origin || claims.sub !== subject || (claims.exp as number) * 1000 < Date.now()) {
    throw new Error(`push service: VAPID claims wrong: ${JSON.stringify(claims)}`)
  }
  return claims
}

function checkEncoding (headers: IncomingMessage['headers'], body: Buffer, { ecdh, auth }: Subscriber): string {
  if (headers['content-encoding'] !== 'aes128gcm') throw new Error(`push service: content-encoding ${headers['content-encoding']}`)
  return decrypt(body, { version: 'aes128gcm', privateKey: ecdh, authSecret: auth }).toString()
}
