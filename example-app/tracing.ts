// OpenTelemetry for the example app: with OTEL_EXPORTER_OTLP_ENDPOINT set, an SDK exports the
// edge's spans over OTLP/HTTP (the exporter reads the endpoint and OTEL_* settings itself), and
// the edge is registered with `tracing: true`. The package bundles no SDK: this is the app's part.
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'

/** Registers a global tracer provider exporting to the OTLP endpoint; resolves with its shutdown (flushes). */
export function startTracing (): () => Promise<void> {
  const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 500 })] })
  provider.register()
  return async () => { await provider.shutdown() }
}
