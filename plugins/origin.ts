import { InvalidOptionError } from './errors.js'

// Origins compared as browsers mean them: `https://App.Example:443/` and `https://app.example` are
// one origin. Both the configured list and each request's `Origin` go through `normalizeOrigin`.

/**
 * `scheme://host[:port]` with scheme and host in lower case (a host in Unicode as its punycode),
 * the scheme's default port dropped and a trailing `/` ignored; null when `value` is no origin
 * (`null`, a wildcard, a path, a query, a fragment, credentials, no host).
 */
export function normalizeOrigin (value: string): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  // A `*` is a valid host character to the URL parser, but no wildcard is meant here.
  if (url.host === '' || url.host.includes('*') || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '' ||
    (url.pathname !== '/' && url.pathname !== '') || value.endsWith('?') || value.endsWith('#')) return null
  // http(s) and ws(s) have an origin of their own; for an app's scheme (capacitor://, chrome-extension://)
  // the URL's origin is opaque, so it is built from the parts.
  const origin = url.origin !== 'null' ? url.origin : `${url.protocol}//${url.host}`
  return origin.toLowerCase()
}

/**
 * A check of request `Origin`s against `allowed` (normalized here); throws `FST_NOTIFY_INVALID_OPTION`
 * naming the first entry that is no origin. The header is looked up as sent first: a browser sends
 * it normalized, so the common case costs one Set lookup.
 */
export function originMatcher (allowed: readonly string[], option = 'allowedOrigins'): (origin: string) => boolean {
  const origins = new Set<string>()
  for (const entry of allowed) {
    const origin = typeof entry === 'string' ? normalizeOrigin(entry) : null
    if (origin === null) throw new InvalidOptionError(`${option}: ${JSON.stringify(entry)?.slice(0, 256)} is not an origin (scheme://host[:port])`)
    origins.add(origin)
  }
  return (origin) => {
    if (origins.has(origin)) return true
    const normalized = normalizeOrigin(origin)
    return normalized !== null && origins.has(normalized)
  }
}
