import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, type ReadableSpan, type SpanProcessor } from "@opentelemetry/sdk-trace-base";

/** A finished span, reduced to what the demo prints. */
export interface DemoSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  scope: string;
  /** `messaging.message.id` of a send/process span. */
  messageId: string | undefined;
  start: number;
}

/**
 * What an application does to get traces: the SDKs only use `@opentelemetry/api`; the app
 * installs a tracer provider, a context manager and the W3C propagator. The demo's "exporter"
 * keeps finished spans in memory, bounded, so it can show one trace across the services.
 */
export function installDemoTracing(limit = 20_000): { spans(): DemoSpan[]; clear(): void } {
  const spans: DemoSpan[] = [];
  const processor: SpanProcessor = {
    onStart() {},
    onEnd(span: ReadableSpan) {
      if (spans.length >= limit) spans.shift();
      const ctx = span.spanContext();
      spans.push({
        traceId: ctx.traceId,
        spanId: ctx.spanId,
        parentSpanId: span.parentSpanContext?.spanId,
        name: span.name,
        kind: span.kind,
        scope: String(span.instrumentationScope.name),
        messageId: span.attributes["messaging.message.id"] as string | undefined,
        start: span.startTime[0] * 1e3 + span.startTime[1] / 1e6,
      });
    },
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [processor] }));
  return {
    spans: () => spans,
    clear: () => {
      spans.length = 0;
    },
  };
}
