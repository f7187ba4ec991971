import type { PresenceTracker } from './tracker.js'

/** One user across all instances (SPEC section 8). */
export interface UserPresence {
  /** Open authenticated connections of the user. */
  connections: number
  /** Streams at least one of them subscribes to, sorted. */
  streams: string[]
}

/** One public stream across all instances: counts only, its audience is not listed. */
export interface StreamPresence {
  /** Subscribed connections, anonymous ones included. */
  connections: number
  /** Distinct authenticated users among them. */
  users: number
  /** Those users, sorted: only when asked for (a channel that declares member presence). */
  members?: string[]
}

/** Where presence is answered from: this process (memory) or every live instance (Redis). */
export interface PresenceStore {
  /** This instance's state; the streams plugin reports connection events to it. */
  readonly tracker: PresenceTracker
  /** Each user's presence, in the order asked. */
  users (users: string[]): Promise<UserPresence[]>
  /** A public stream's or a channel's (`room:lobby`) audience; with `members`, its users listed too. */
  stream (stream: string, members?: boolean): Promise<StreamPresence>
  /** Settles once this instance's changes so far are readable by every instance (Redis: written). */
  flushed? (): Promise<void>
  /** Stops timers and removes this instance's share (Redis: within its timeout). */
  close (): Promise<void>
}
