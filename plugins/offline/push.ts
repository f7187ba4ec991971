// One Web Push request (RFC 8030, 8291 aes128gcm, 8292 VAPID) through `web-push`, and what its
// answer means for the subscription and for a retry.
import { Agent } from 'node:https'
import webpush from 'web-push'
import { InvalidOptionError } from '../errors.js'
import { positiveInteger } from '../util.js'
import { retryAfter, type Attempt } from './retry.js'
import type { PushSubscriptionJSON } from './store.js'

export interface VapidDetails {
  /** The application server's public key, base64url (as `web-push generate-vapid-keys` prints it). */
  publicKey: string
  /** Its private key, base64url. */
  privateKey: string
  /** A `mailto:` or `https:` URL the push service may contact about this sender. */
  subject: string
}

// The largest plaintext that fits RFC 8291's 4096-byte aes128gcm body: 86 bytes of header, a
// padding delimiter and a 16-byte tag.
export const MAX_PUSH_PAYLOAD = 4096 - 86 - 1 - 16

export interface PushSenderOptions {
  vapid: VapidDetails
  /** Socket inactivity, in ms, after which a push request is abandoned. */
  timeout: number
  /** Largest payload sent as is, in bytes; a longer message goes out truncated. */
  maxPayload: number
  /** An `https.Agent` of your own (proxies, a private CA); keep-alive with a socket cap otherwise. */
  agent?: Agent
}

export function checkVapid (vapid: unknown): VapidDetails {
  const { publicKey, privateKey, subject } = (vapid ?? {}) as Record<string, unknown>
  try {
    // Checks all three (and signs a throwaway token) without setting web-push's process-wide details.
    webpush.getVapidHeaders('https://push.example', subject as string, publicKey as string, privateKey as string, 'aes128gcm')
  } catch (err) {
    throw new InvalidOptionError(`push.vapid: ${(err as Error).message}`)
  }
  return { publicKey: publicKey as string, privateKey: privateKey as string, subject: subject as string }
}

/** The payload of a message: its `message` frame, or the truncated stand-in over `maxPayload`. */
export function pushPayload (stream: string, id: string, ts: number, data: unknown, maxPayload: number): string {
  const frame = JSON.stringify({ event: 'message', stream, id, ts, data })
  if (Buffer.byteLength(frame) <= maxPayload) return frame
  return JSON.stringify({ event: 'message', stream, id, truncated: true })
}

// A VAPID JWT is valid for one push service origin up to 24 h (RFC 8292). Signing one per push
// was three quarters of a push's CPU (4 ms against 1 ms, measured): sign one per origin, valid
// 12 h, renewed after 6.
const VAPID_LIFETIME_S = 12 * 3600
const MAX_ORIGINS = 100

export class PushSender {
  readonly #opts: PushSenderOptions
  readonly #agent: Agent
  readonly #ownAgent: boolean
  readonly #vapid = new Map<string, { authorization: string, renewAt: number }>()

  constructor (opts: PushSenderOptions) {
    this.#opts = opts
    if (opts.agent !== undefined && !(opts.agent instanceof Agent)) throw new InvalidOptionError('push.agent must be an https.Agent')
    this.#ownAgent = opts.agent === undefined
    this.#agent = opts.agent ?? new Agent({ keepAlive: true, maxSockets: 64 })
    positiveInteger('push.timeout', opts.timeout, 1)
  }

  #authorization (endpoint: string): string {
    const origin = new URL(endpoint).origin
    const now = Date.now()
    const cached = this.#vapid.get(origin)
    if (cached !== undefined && cached.renewAt > now) return cached.authorization
    if (this.#vapid.size >= MAX_ORIGINS) this.#vapid.clear()
    const { subject, publicKey, privateKey } = this.#opts.vapid
    const expiration = Math.floor(now / 1000) + VAPID_LIFETIME_S
    const { Authorization: authorization } = webpush.getVapidHeaders(origin, subject, publicKey, privateKey, 'aes128gcm', expiration)
    this.#vapid.set(origin, { authorization, renewAt: now + VAPID_LIFETIME_S * 500 })
    return authorization
  }

  /** One attempt; `ttl` in seconds is how long the push service may hold the message. */
  async send (subscription: PushSubscriptionJSON, payload: string, ttl: number): Promise<Attempt> {
    try {
      await webpush.sendNotification(subscription, payload, {
        // The VAPID header is ours (cached per origin), so web-push signs none.
        // null, not undefined: web-push would fall back to its process-wide details.
        vapidDetails: null as unknown as undefined,
        headers: { Authorization: this.#authorization(subscription.endpoint) },
        contentEncoding: 'aes128gcm',
        TTL: ttl,
        timeout: this.#opts.timeout,
        agent: this.#agent
      })
      return { outcome: 'sent' }
    } catch (err) {
      return verdict(err)
    }
  }

  close (): void {
    if (this.#ownAgent) this.#agent.destroy()
  }
}

function verdict (err: unknown): Attempt {
  const { statusCode, headers, code, message } = err as { statusCode?: number, headers?: Record<string, string>, code?: string, message?: string }
  if (statusCode === 404 || statusCode === 410) return { outcome: 'gone' }
  if (statusCode === 429 || (statusCode !== undefined && statusCode >= 500)) {
    return { outcome: 'retry', after: retryAfter(headers?.['retry-after']), reason: `status ${statusCode}` }
  }
  if (statusCode !== undefined) return { outcome: 'failed', reason: `status ${statusCode}` }
  // Refused: the request never reached the service, so a retry cannot push twice. A timeout or a
  // reset might have been delivered: not retried (at most once).
  if (code === 'ECONNREFUSED') return { outcome: 'retry', after: null, reason: code }
  return { outcome: 'failed', reason: code ?? message ?? 'unknown error' }
}
