import { encodeUser } from '../amqp/routing-key.js'

// The JetStream ingress's subjects (SPEC section 16), in one leaf that producers written in
// TypeScript import too: `<prefix>.public.<stream>`, `<prefix>.private.<user>.<stream>`.
// A subject kind is one entry of SHAPES: channels (`<prefix>.channel.<stream>.<key>`) add one.

/** What a subject addresses: a public stream, or one user's private stream. */
export interface SubjectTarget {
  stream: string
  user?: string
}

/** `user` as one subject token: percent-encoded as in routing keys (`.` as `%2E`), and NATS's wildcards `*` and `>` too. */
export function encodeSubjectToken (value: string): string {
  return encodeUser(value).replaceAll('*', '%2A').replaceAll('>', '%3E')
}

/** The subject that publishes to `stream` (for `user` when private) under `prefix`. */
export function natsSubject ({ stream, user }: SubjectTarget, prefix = 'notify'): string {
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
