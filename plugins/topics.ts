// Bus topics are built here and only here, from a declared stream name and a user id the server
// authenticated. The user id is base64url-encoded, so no id can contain a separator or a
// wildcard, and two different ids never share a topic.

import { InvalidOptionError } from './errors.js'

export const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/
export const TOPIC_PREFIX = /^[A-Za-z0-9_-]{1,64}$/
export const MAX_USER_LENGTH = 256

/** Why a user id cannot be used, or null when it can. */
export function userIdProblem (user: unknown): string | null {
  if (typeof user !== 'string') return 'must be a string'
  if (user.length === 0) return 'must not be empty'
  if (user.length > MAX_USER_LENGTH) return `must be at most ${MAX_USER_LENGTH} characters`
  // A lone surrogate would encode to U+FFFD and collide with every other such id.
  if (!user.isWellFormed()) return 'must be well-formed unicode'
  return null
}

export function publicTopic (prefix: string, stream: string): string {
  return `${prefix}/p/${stream}`
}

export function privateTopic (prefix: string, stream: string, user: string): string {
  return `${prefix}/u/${stream}/${Buffer.from(user, 'utf8').toString('base64url')}`
}

/** The `topicPrefix` option, checked: the same for the edge and the publisher. */
export function topicPrefixOption (prefix: unknown): string {
  if (prefix === undefined) return 'notify'
  if (typeof prefix !== 'string' || !TOPIC_PREFIX.test(prefix)) {
    throw new InvalidOptionError(`topicPrefix must match ${TOPIC_PREFIX}`)
  }
  return prefix
}

/**
 * The sharded pub/sub channel of a topic on Redis Cluster: the topic as its own hash tag, so the
 * channel hashes to the slot of the topic's history keys (`<prefix>{<topic>}`), and the script
 * that appends to history can SPUBLISH in the same atomic step. Topics hold no braces.
 */
export function shardedChannel (topic: string): string {
  return `{${topic}}`
}
