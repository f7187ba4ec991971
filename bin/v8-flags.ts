import { setFlagsFromString } from 'node:v8'

/**
 * Turns off V8's allocation-site pretenuring, before the edge takes traffic. When a garbage
 * collection finds most of what an allocation site made since the last one still alive, V8 makes
 * that site allocate straight into the old generation, for the rest of the process's life. A
 * burst of publishes waiting for Redis's answer at such a moment (early in a process's life, when
 * collections are frequent) is enough: every later publish then goes to the old generation, and
 * the publishing instance pays for major collections it would not need. In the cross-instance
 * benchmark that happened in 13 runs of 34: 37–54 µs of CPU per message on the publishing
 * instance instead of 29–41, p99 4.5–14 ms instead of 3–4 (docs/benchmarks.md, "A burst can
 * make V8 pretenure the publish path"). Nothing in a notification edge lives long enough to
 * gain from pretenuring. V8 reads the flag at each collection, so setting it at startup holds; it
 * is not allowed in NODE_OPTIONS, and an app that embeds the plugins passes
 * `--no-allocation-site-pretenuring` to node itself (docs/production.md).
 */
export function tuneV8ForEdge (): void {
  setFlagsFromString('--no-allocation-site-pretenuring')
}
