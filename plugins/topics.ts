// Bus topics are built here and only here, from a declared stream name and a user id the server
// authenticated. The user id is base64url-encoded, so no id can contain a separator or a
// wildcard, and two different ids never share a topic.

import { InvalidOptionError } from './errors.js'

export const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/
export const TOPIC_PREFIX = /^[A-Za-z0-9_-]{1,64}$/
export const MAX_USER_LENGTH = 256
/** A channel's key (SPEC section 12): `room:lobby` subscribes to the key `lobby` of the channel `room`. */
export const CHANNEL_KEY = /^[A-Za-z0-9_@.=-]{1,128}$/
export const MAX_KEY_LENGTH = 128

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

/** Why a channel key cannot be used, or null when it can. */
export function keyProblem (key: unknown): string | null {
  if (typeof key !== 'string') return 'must be a string'
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) return `must be 1 to ${MAX_KEY_LENGTH} characters`
  if (!CHANNEL_KEY.test(key)) return 'may hold only A-Z a-z 0-9 _ @ . = -'
  return null
}

/** A channel key's topic: escaped as a user id is, though the pattern already keeps wildcards out. */
export function channelTopic (prefix: string, stream: string, key: string): string {
  return `${prefix}/c/${stream}/${Buffer.from(key, 'utf8').toString('base64url')}`
}

/** Where instances tell each other that a channel key's members changed (a level below its topic: no channel topic has it). */
export function membersTopic (topic: string): string {
  return `${topic}/members`
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
