import { BadPushSubscriptionError, InvalidOptionError } from '../errors.js'
import type { PushSubscriptionJSON } from './store.js'

/**
 * Push services of the browsers that ship one (Chrome/Edge via FCM, Firefox, Safari, Windows):
 * an endpoint elsewhere is refused, so that a user cannot make the edge POST to any host.
 */
export const PUSH_SERVICE_HOSTS: readonly string[] = Object.freeze([
  'fcm.googleapis.com', 'updates.push.services.mozilla.com', '*.push.apple.com', '*.notify.windows.com'
])

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/
const MAX_ENDPOINT = 2048
const KEYS = new Set(['endpoint', 'expirationTime', 'keys'])

/** A check of endpoint URLs against `hosts`: exact `host` or `host:port`, or `*.domain` for its subdomains. */
export function endpointCheck (hosts: unknown): (url: URL) => boolean {
  if (!Array.isArray(hosts) || !hosts.every((host) => typeof host === 'string' && host.length > 0)) {
    throw new InvalidOptionError('push.allowedEndpointHosts must be an array of host names')
  }
  const exact = new Set(hosts.filter((host) => !host.startsWith('*.')))
  const suffixes = hosts.filter((host) => host.startsWith('*.')).map((host) => host.slice(1))
  return (url) => exact.has(url.host) || exact.has(url.hostname) || suffixes.some((suffix) => url.hostname.endsWith(suffix))
}

function base64urlBytes (value: unknown): number {
  if (typeof value !== 'string' || !BASE64URL.test(value)) return -1
  return Buffer.from(value, 'base64url').length
}

/** The body as a subscription to store; `FST_NOTIFY_BAD_PUSH_SUBSCRIPTION` (400) says what is wrong. */
export function checkSubscription (body: unknown, allowed: (url: URL) => boolean): PushSubscriptionJSON {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadPushSubscriptionError('body must be a PushSubscription JSON object')
  const { endpoint, expirationTime, keys } = body as Record<string, unknown>
  const extra = Object.keys(body).find((key) => !KEYS.has(key))
  if (extra !== undefined) throw new BadPushSubscriptionError(`unexpected property ${extra.slice(0, 64)}`)
  const url = endpointUrl(endpoint)
  if (!allowed(url)) throw new BadPushSubscriptionError(`endpoint host ${url.host} is not an allowed push service`)
  if (expirationTime !== undefined && expirationTime !== null && typeof expirationTime !== 'number') {
    throw new BadPushSubscriptionError('expirationTime must be a number or null')
  }
  const { p256dh, auth } = (keys ?? {}) as Record<string, unknown>
  // An uncompressed P-256 point, and the 16-byte auth secret (RFC 8291).
  if (base64urlBytes(p256dh) !== 65) throw new BadPushSubscriptionError('keys.p256dh must be a base64url P-256 public key (65 bytes)')
  if (base64urlBytes(auth) !== 16) throw new BadPushSubscriptionError('keys.auth must be a base64url secret of 16 bytes')
  return { endpoint: endpoint as string, expirationTime: expirationTime ?? null, keys: { p256dh: p256dh as string, auth: auth as string } }
}

/** The endpoint of a `DELETE` body (a whole subscription, or just `{ endpoint }`). */
export function checkEndpoint (body: unknown): string {
  const endpoint = (body as { endpoint?: unknown } | null)?.endpoint
  endpointUrl(endpoint)
  return endpoint as string
}

function endpointUrl (endpoint: unknown): URL {
  if (typeof endpoint !== 'string' || endpoint.length > MAX_ENDPOINT) throw new BadPushSubscriptionError(`endpoint must be a URL of at most ${MAX_ENDPOINT} characters`)
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw new BadPushSubscriptionError('endpoint must be a URL')
  }
  // web-push speaks HTTPS to every endpoint, whatever its scheme says.
  if (url.protocol !== 'https:') throw new BadPushSubscriptionError('endpoint must be an https URL')
  return url
}
