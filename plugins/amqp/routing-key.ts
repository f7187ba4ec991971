// The RabbitMQ ingress's routing keys (SPEC section 9), in one leaf that producers written in
// TypeScript (the publisher plugin) import too: `public.<stream>`, `private.<user>.<stream>`,
// `channel.<stream>.<key>` (SPEC section 12).

/** What a routing key addresses: a public stream, one user's private stream, or one key of a channel. */
export interface RoutingTarget {
  stream: string
  user?: string
  key?: string
}

/** AMQP caps a routing key at 255 bytes. */
export const MAX_ROUTING_KEY_BYTES = 255

/** `user` percent-encoded, `.` as `%2E`: it is always exactly one dot-separated word. */
export function encodeUser (user: string): string {
  return encodeURIComponent(user).replaceAll('.', '%2E')
}

/** The routing key that publishes to `stream` (for `user` when private); throws a RangeError past 255 bytes. */
export function routingKey ({ stream, user, key: channelKey }: RoutingTarget): string {
  const key = channelKey !== undefined
    ? `channel.${stream}.${encodeUser(channelKey)}`
    : user === undefined ? `public.${stream}` : `private.${encodeUser(user)}.${stream}`
  if (Buffer.byteLength(key) > MAX_ROUTING_KEY_BYTES) throw new RangeError(`routing key over ${MAX_ROUTING_KEY_BYTES} bytes`)
  return key
}

/**
 * The target of a routing key, or null when it is none of the two shapes or its user is not
 * valid percent-encoding. The stream name is checked where every publish is: in `app.notify`.
 */
export function parseRoutingKey (key: string): RoutingTarget | null {
  const words = key.split('.')
  if (words[0] === 'public' && words.length === 2) return { stream: words[1] }
  if ((words[0] !== 'private' && words[0] !== 'channel') || words.length !== 3) return null
  try {
    return words[0] === 'channel'
      ? { stream: words[1], key: decodeURIComponent(words[2]) }
      : { stream: words[2], user: decodeURIComponent(words[1]) }
  } catch {
    return null
  }
}
