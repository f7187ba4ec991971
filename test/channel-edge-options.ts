import type { NotifyEdgeOptions, StreamDefinition } from '../plugins/index.js'
import { STREAMS } from '../example-app/app.js'

export const CHANNEL_EDGE_STREAMS: StreamDefinition[] = [...STREAMS.filter((stream) => stream.name !== 'room'), { name: 'room', kind: 'channel', openAccess: true, members: true }]

/** Presence that stops counting a dead instance within a second, read again every 300 ms. */
export const CHANNEL_EDGE_TIMINGS: Partial<NotifyEdgeOptions> = {
  presence: { heartbeatInterval: 200, ttl: 1000 },
  routes: [{ path: '/ws', membersSweepInterval: 300 }]
}
