import type { StreamDefinition } from '../plugins/index.js'

// The example's streams: one module that the edge (embedded, or the dedicated edge through
// STREAMS_CONFIG, whose default this is) and the publishing services share. History lets a
// client that reconnects (or lands on another instance) resume with `since`; docs/history.md
// explains these sizes.
export const STREAMS: StreamDefinition[] = [
  { name: 'order', kind: 'private', schema: { type: 'object', required: ['orderId', 'status'] }, history: { size: 100, ttl: 3600 } },
  { name: 'reward', kind: 'private', history: { size: 100, ttl: 3600 } },
  { name: 'promotional', kind: 'public', history: { size: 100, ttl: 3600 } },
  { name: 'system', kind: 'public', history: { size: 1000, ttl: 3600 } }
]
export default STREAMS
