// What an edge on Redis says about its streams, so that a publisher writing to the same Redis
// refuses declarations the edge does not share (SPEC section 11) instead of publishing into a
// stream no socket can subscribe to, or past a history the edge would read.
import { createHash } from 'node:crypto'
import type { DeclaredStream } from './declarations.js'
import { BusUnavailableError } from './errors.js'
import { within } from './util.js'

/** Per stream: its kind, its history bounds, and a digest of its schema. */
export type StreamManifest = Record<string, { kind: string, history: { size: number, ttl: number } | null, schema: string | null }>

/** The Redis key under which edges with this topic prefix keep their manifest. */
export function manifestKey (prefix: string): string {
  return `${prefix}:streams`
}

export function streamManifest (streams: ReadonlyMap<string, DeclaredStream>): StreamManifest {
  const manifest: StreamManifest = {}
  for (const stream of streams.values()) {
    manifest[stream.name] = {
      kind: stream.kind,
      history: stream.history === undefined ? null : { size: stream.history.size, ttl: stream.history.ttl },
      schema: stream.schema === undefined ? null : createHash('sha256').update(JSON.stringify(stream.schema)).digest('base64url')
    }
  }
  return manifest
}

/**
 * How the publisher's streams differ from the edge's, or null when the edge declares every one
 * of them the same way (it may declare more).
 */
export function manifestMismatch (publisher: StreamManifest, edge: StreamManifest): string | null {
  for (const [name, mine] of Object.entries(publisher)) {
    const theirs = edge[name]
    if (theirs === undefined) return `stream ${name} is not declared by the edge`
    for (const field of ['kind', 'history', 'schema'] as const) {
      if (JSON.stringify(mine[field]) !== JSON.stringify(theirs[field])) return `stream ${name}: ${field} differs from the edge's`
    }
  }
  return null
}

/** The two commands the manifest needs; any ioredis client fits. */
export interface ManifestClient {
  get (key: string): Promise<string | null>
  set (key: string, value: string): Promise<unknown>
}

/** Writes an edge's manifest; rejects when Redis does not take it within `timeout` ms. */
export async function writeManifest (client: ManifestClient, prefix: string, manifest: StreamManifest, timeout: number): Promise<void> {
  if (await within(timeout, client.set(manifestKey(prefix), JSON.stringify(manifest))) === null) {
    throw new BusUnavailableError(`stream manifest not written within ${timeout} ms`)
  }
}

/** The edges' manifest, or null when no edge wrote one; `FST_NOTIFY_BUS_UNAVAILABLE` when Redis does not answer in time. */
export async function readManifest (client: ManifestClient, prefix: string, timeout: number): Promise<StreamManifest | null> {
  let read: { value: string | null } | null
  try {
    read = await within(timeout, client.get(manifestKey(prefix)))
  } catch (err) {
    throw new BusUnavailableError(`stream manifest: ${(err as Error).message}`)
  }
  if (read === null) throw new BusUnavailableError(`stream manifest: no answer within ${timeout} ms`)
  return read.value === null ? null : JSON.parse(read.value) as StreamManifest
}
