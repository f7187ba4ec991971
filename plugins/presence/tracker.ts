import { sharedArray } from '../util.js'

// This instance's share of presence, kept in memory and changed only by connection events (never
// per delivered message). A store reads it: in-process it is the whole answer; on Redis it is
// written out, and because each write sets local truth rather than adding to a counter, writes
// coalesce, and after a Redis restart the whole state can simply be written again.

/**
 * A user's connections on this instance and the streams they subscribe to: a stream appears once
 * per connection of the user that subscribes to it. Users are many and their streams few, so a
 * short array, replaced on change, instead of a Map (about 180 bytes even with one entry).
 */
export interface LocalUser {
  connections: number
  streams: readonly string[]
}

/** The distinct streams of a user, sorted. */
export function userStreams (local: LocalUser): string[] {
  return [...new Set(local.streams)].sort()
}

/** A public stream's subscribed connections on this instance (anonymous ones included) and users. */
export interface LocalStream {
  connections: number
  /** Authenticated user → their connections subscribed to the stream. */
  users: Map<string, number>
}

/** What changed since the last `drain()`: the keys whose local truth must be written again. */
export interface PresenceChanges {
  users: Set<string>
  streams: Set<string>
  /** Public stream → users whose membership changed. */
  members: Map<string, Set<string>>
}

function changes (): PresenceChanges {
  return { users: new Set(), streams: new Set(), members: new Map() }
}

/** What the streams plugin reports, once per connection event. */
export interface PresenceReporter {
  connected (user: string | null): void
  disconnected (user: string | null): void
  subscribed (user: string | null, stream: string, isPublic: boolean): void
  unsubscribed (user: string | null, stream: string, isPublic: boolean): void
}

/** Adds `by` to a count; true when the key appeared or went (its first or its last). */
function bump<K> (map: Map<K, number>, key: K, by: 1 | -1): boolean {
  const count = (map.get(key) ?? 0) + by
  if (count > 0) map.set(key, count)
  else map.delete(key)
  return count === (by === 1 ? 1 : 0)
}

const NONE: readonly string[] = Object.freeze([])
// Most users are on one stream: they share that stream's one-element array (about 60 bytes each).
// Keyed by stream name, so bounded by the declared streams.
const ONE = new Map<string, readonly string[]>()

/** Adds or removes one occurrence of `stream`; true when it was the user's first or last. */
function changeStreams (local: LocalUser, stream: string, by: 1 | -1): boolean {
  const { streams } = local
  const at = streams.indexOf(stream)
  // Arrays are replaced, never changed, so they can be shared. concat() and toSpliced() make
  // arrays of the exact size; spreading over-allocates.
  if (by === 1) {
    local.streams = streams.length === 0 ? sharedArray(ONE, stream, stream) : streams.concat(stream)
    return at < 0
  }
  if (at < 0) return false
  local.streams = streams.length === 1 ? NONE : streams.toSpliced(at, 1)
  return !local.streams.includes(stream)
}

/** Told when a user's first connection on this instance subscribes to a stream, or their last leaves it. */
export type MemberListener = (stream: string, user: string, joined: boolean) => void

export class PresenceTracker implements PresenceReporter {
  readonly users = new Map<string, LocalUser>()
  readonly streams = new Map<string, LocalStream>()
  /** Listeners of member changes (counted streams only: public ones and channels). */
  readonly memberListeners = new Set<MemberListener>()
  #changes = changes()
  #onChange: (() => void) | null = null

  /** Called on every change; the watcher coalesces. */
  watch (onChange: () => void): void {
    this.#onChange = onChange
  }

  /** The changes since the last call; the next change calls the watcher again. */
  drain (): PresenceChanges {
    const drained = this.#changes
    this.#changes = changes()
    return drained
  }

  connected (user: string | null): void {
    if (user === null) return
    let local = this.users.get(user)
    if (local === undefined) {
      local = { connections: 0, streams: NONE }
      this.users.set(user, local)
    }
    local.connections++
    this.#userChanged(user)
  }

  disconnected (user: string | null): void {
    const local = user === null ? undefined : this.users.get(user)
    if (local === undefined) return
    if (--local.connections <= 0) this.users.delete(user!)
    this.#userChanged(user!)
  }

  subscribed (user: string | null, stream: string, isPublic: boolean): void {
    this.#subscription(user, stream, isPublic, 1)
  }

  unsubscribed (user: string | null, stream: string, isPublic: boolean): void {
    this.#subscription(user, stream, isPublic, -1)
  }

  #subscription (user: string | null, stream: string, isPublic: boolean, by: 1 | -1): void {
    const local = user === null ? undefined : this.users.get(user)
    if (local !== undefined && changeStreams(local, stream, by)) this.#userChanged(user!)
    if (!isPublic) return
    let entry = this.streams.get(stream)
    if (entry === undefined) {
      if (by < 0) return
      entry = { connections: 0, users: new Map() }
      this.streams.set(stream, entry)
    }
    entry.connections += by
    if (user !== null && bump(entry.users, user, by)) {
      this.#memberChanged(stream, user)
      for (const listener of this.memberListeners) listener(stream, user, by === 1)
    }
    if (entry.connections <= 0) this.streams.delete(stream)
    if (this.#onChange === null) return
    this.#changes.streams.add(stream)
    this.#onChange()
  }

  // Changes are kept only for a watcher, which drains them: the in-process store reads the
  // tracker directly and never drains, and would otherwise keep every user name it ever saw.
  #userChanged (user: string): void {
    if (this.#onChange === null) return
    this.#changes.users.add(user)
    this.#onChange()
  }

  #memberChanged (stream: string, user: string): void {
    if (this.#onChange === null) return
    let members = this.#changes.members.get(stream)
    if (members === undefined) {
      members = new Set()
      this.#changes.members.set(stream, members)
    }
    members.add(user)
  }
}
