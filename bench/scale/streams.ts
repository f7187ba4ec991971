import { defineStreams, type StreamDefinition } from '../../plugins/index.js'

// The streams of the 100,000-connection scenario: every user has a private stream and reads one of
// ROOMS public streams. Both keep a little history, so that a client whose instance died resumes
// with `since` on another one (what the storm measures).

export const ROOMS = 100
export const SCALE_PRIVATE = 'reward'

export function roomName (index: number): string {
  return `room${index % ROOMS}`
}

const HISTORY = { size: 20, ttl: 600 }

export const SCALE_STREAMS: StreamDefinition[] = defineStreams([
  { name: SCALE_PRIVATE, kind: 'private', history: HISTORY },
  ...Array.from({ length: ROOMS }, (_, i) => ({ name: roomName(i), kind: 'public' as const, history: HISTORY }))
])
