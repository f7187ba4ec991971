// The server → client `message` frame (SPEC section 4), encoded once by the publisher, carried
// complete on the bus and written as is by every instance: publishing, history and streams share it.

/**
 * A `message` frame with its id and ts left out, serialized once per publish; a store that
 * assigns ids (possibly inside Redis) completes it as `${head}${id}","ts":${ts}${tail}`.
 */
export interface MessageTemplate {
  readonly head: string
  readonly tail: string
}

/**
 * Throws a TypeError for data JSON cannot hold (a function, a symbol, a BigInt, a cycle). `from`,
 * the sender of a client publish (SPEC section 13), is written once here, never per socket.
 */
export function messageTemplate (stream: string, data: unknown, from?: string): MessageTemplate {
  const json: string | undefined = JSON.stringify(data)
  if (json === undefined) throw new TypeError('data is not representable as JSON')
  const sender = from === undefined ? '' : `,"from":${JSON.stringify(from)}`
  return { head: `{"event":"message","stream":"${stream}","id":"`, tail: `${sender},"data":${json}}` }
}

/** The same message for another stream name (a channel's `room:lobby`), its data serialized once for all. */
export function retarget (template: MessageTemplate, stream: string): MessageTemplate {
  return { head: `{"event":"message","stream":"${stream}","id":"`, tail: template.tail }
}

export function messageFrame (template: MessageTemplate, id: string, ts: number): string {
  return `${template.head}${id}","ts":${ts}${template.tail}`
}
