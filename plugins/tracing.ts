// OpenTelemetry tracing of the edge, on the API only: the app brings (or not) an SDK and an
// exporter. A leaf every plugin may import. With tracing off the plugins hold `null` instead of a
// tracer, so the hot path pays one null check and nothing else.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api'

/** The instrumentation scope of every span the edge starts. */
export const TRACER_NAME = 'fastify-notify-edge'

/** The edge's tracer when tracing is on, else null. */
export function notifyTracer (on: boolean | undefined): Tracer | null {
  return on === true ? trace.getTracer(TRACER_NAME) : null
}

// W3C Trace Context, version 00: version-traceid-spanid-flags, lower-case hex.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const INVALID_TRACE = /^0+$/

/** The W3C `traceparent` of a span, to carry on the bus. */
export function traceparentOf (span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext()
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`
}

/** `parent` with the span context a W3C `traceparent` names; `parent` itself when it is not a valid one. */
export function contextFrom (traceparent: unknown, parent: Context = ROOT_CONTEXT): Context {
  const match = typeof traceparent === 'string' ? TRACEPARENT.exec(traceparent.trim()) : null
  if (match === null || INVALID_TRACE.test(match[1]) || INVALID_TRACE.test(match[2])) return parent
  return trace.setSpanContext(parent, { traceId: match[1], spanId: match[2], traceFlags: Number.parseInt(match[3], 16), isRemote: true })
}

/**
 * Runs `fn` as the continuation of a producer's trace: for ingresses (gRPC metadata, AMQP headers,
 * an HTTP header) that received a W3C `traceparent`. Where a span is active already (e.g.
 * `@fastify/otel`'s server span, itself continuing that header) or none was sent, `fn` runs as is.
 */
export function continueTrace<T> (traceparent: unknown, fn: () => T): T {
  if (traceparent === undefined || trace.getActiveSpan() !== undefined) return fn()
  return context.with(contextFrom(traceparent, context.active()), fn)
}

/** `continueTrace` when the edge traces (`tracer` set), else `fn()` alone: what the ingresses call. */
export function ingressTrace<T> (tracer: Tracer | null, traceparent: unknown, fn: () => T): T {
  return tracer === null ? fn() : continueTrace(traceparent, fn)
}

/**
 * Runs `fn` in a new active span of `tracer`, ends it when `fn`'s promise settles, and records a
 * rejection on it. `parent` defaults to the active context.
 */
export function inSpan<T> (
  tracer: Tracer, name: string, kind: SpanKind, attributes: Attributes, fn: (span: Span) => Promise<T>, parent: Context = context.active()
): Promise<T> {
  const span = tracer.startSpan(name, { kind, attributes }, parent)
  const settle = (err?: unknown): void => {
    if (err !== undefined) {
      span.recordException(err as Error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message })
    }
    span.end()
  }
  let result: Promise<T>
  try {
    result = context.with(trace.setSpan(parent, span), fn, undefined, span)
  } catch (err) {
    settle(err)
    throw err
  }
  return result.then((value) => { settle(); return value }, (err: unknown) => { settle(err); throw err })
}

/**
 * Runs `fn` (synchronous) in a span whose parent is the producer's `traceparent`, ending it when
 * `fn` returns: the delivery of one bus message to the local sockets of its topic.
 */
export function inRemoteChild (tracer: Tracer, name: string, traceparent: string, attributes: Attributes, fn: (span: Span) => void): void {
  const parent = contextFrom(traceparent)
  const span = tracer.startSpan(name, { kind: SpanKind.CONSUMER, attributes }, parent)
  try {
    context.with(trace.setSpan(parent, span), fn, undefined, span)
  } finally {
    span.end()
  }
}

/** The active span's ids for a log line (pino `mixin`), `{}` outside any span. */
export function traceLogFields (): Record<string, string> {
  const span = trace.getActiveSpan()
  if (span === undefined) return {}
  const { traceId, spanId, traceFlags } = span.spanContext()
  return { trace_id: traceId, span_id: spanId, trace_flags: `0${(traceFlags & 0xff).toString(16)}`.slice(-2) }
}

export { SpanKind }
