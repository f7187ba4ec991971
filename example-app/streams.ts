import { Type } from 'typebox'
import { defineStreams } from '../plugins/index.js'

// The example's streams: one module that the edge (embedded, or the dedicated edge through
// STREAMS_CONFIG, whose default this is) and the publishing services share. History lets a
// client that reconnects (or lands on another instance) resume with `since`; docs/history.md
// explains these sizes. The TypeBox schema validates at run time and types publishing.
export const STREAMS = defineStreams([
  { name: 'order', kind: 'private', schema: Type.Object({ orderId: Type.String(), status: Type.String() }), history: { size: 100, ttl: 3600 } },
  { name: 'reward', kind: 'private', history: { size: 100, ttl: 3600 } },
  { name: 'promotional', kind: 'public', history: { size: 100, ttl: 3600 } },
  { name: 'system', kind: 'public', history: { size: 1000, ttl: 3600 } }
])
export default STREAMS
