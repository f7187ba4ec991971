import { encodeUser, type RoutingTarget } from '../amqp/routing-key.js'

// The JetStream ingress's subjects (SPEC section 16), in one leaf that producers written in
// TypeScript import too: `<prefix>.public.<stream>`, `<prefix>.private.<user>.<stream>`,
// `<prefix>.channel.<stream>.<key>`. A subject kind is one entry of SHAPES.

/** What a subject addresses: a public stream, one user's private stream, or one key of a channel (as a routing key does). */
export type SubjectTarget = RoutingTarget

/** A user or key as one subject token: percent-encoded as in routing keys (`.` as `%2E`), and NATS's wildcards `*` and `>` too. */
export function encodeSubjectToken (value: string): string {
  return encodeUser(value).replaceAll('*', '%2A').replaceAll('>', '%3E')
}

/** The subject that publishes to `stream` (for `user` when private, to `key` on a channel) under `prefix`. */
export function natsSubject ({ stream, user, key }: SubjectTarget, prefix = 'notify'): string {
  if (key !== undefined) return `${prefix}.channel.${stream}.${encodeSubjectToken(key)}`
  return user === undefined ? `${prefix}.public.${stream}` : `${prefix}.private.${encodeSubjectToken(user)}.${stream}`
}

function decode (token: string): string | null {
  try {
    return decodeURIComponent(token)
  } catch {
    return null
  }
}

/** Each subject kind: the tokens after `<prefix>.<kind>.` to a target, or null when they do not fit. */
const SHAPES: Record<string, (tokens: string[]) => SubjectTarget | null> = {
  public: (tokens) => tokens.length === 1 ? { stream: tokens[0] } : null,
  private: (tokens) => {
    if (tokens.length !== 2) return null
    const user = decode(tokens[0])
    return user === null ? null : { stream: tokens[1], user }
  },
  // The key is checked where every publish's is: a bad one, or one on another kind of stream, is `invalid`.
  channel: (tokens) => {
    if (tokens.length !== 2) return null
    const key = decode(tokens[1])
    return key === null ? null : { stream: tokens[0], key }
  }
}

/**
 * The target of `subject` under `prefix`, or null when it is none of the shapes or a token is
 * not valid percent-encoding. The stream name is checked where every publish is: in `app.notify`.
 */
export function parseSubject (subject: string, prefix = 'notify'): SubjectTarget | null {
  if (!subject.startsWith(`${prefix}.`)) return null
  const [kind, ...tokens] = subject.slice(prefix.length + 1).split('.')
  return Object.hasOwn(SHAPES, kind) ? SHAPES[kind](tokens) : null
}
