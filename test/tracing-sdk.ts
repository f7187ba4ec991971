// A real OpenTelemetry SDK for tests: a Node tracer provider (AsyncLocalStorage context manager,
// W3C propagator) exporting into memory, registered globally once per test process.
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'

export const spans = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
provider.register()

/** The finished spans of one trace. */
export function traceSpans (traceId: string): ReadableSpan[] {
  return spans.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId)
}

/** The id of a span's parent, '' for a root. */
export function parentOf (span: ReadableSpan): string {
  return span.parentSpanContext?.spanId ?? ''
}
