import type { PresenceStore, StreamPresence, UserPresence } from './store.js'
import { PresenceTracker, userStreams } from './tracker.js'

/** Presence of this process alone: the answer is a map lookup. */
export class MemoryPresenceStore implements PresenceStore {
  readonly tracker = new PresenceTracker()

  async users (users: string[]): Promise<UserPresence[]> {
    return users.map((user) => {
      const local = this.tracker.users.get(user)
      return { connections: local?.connections ?? 0, streams: local === undefined ? [] : userStreams(local) }
    })
  }

  async stream (stream: string, members = false): Promise<StreamPresence> {
    const local = this.tracker.streams.get(stream)
    const counts = { connections: local?.connections ?? 0, users: local?.users.size ?? 0 }
    return members ? { ...counts, members: local === undefined ? [] : [...local.users.keys()].sort() } : counts
  }

  async close (): Promise<void> {}
}
