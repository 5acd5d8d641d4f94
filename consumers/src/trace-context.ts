import {
  type Context,
  createTraceState,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from "@opentelemetry/api";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The producer's trace context from W3C `traceparent`/`tracestate` headers, as a parent context.
 * Parsed here rather than through the global propagator: the wire rules fix the format, and a
 * service that never registered a propagator must still continue the producer's trace.
 */
export function extractTraceContext(
  traceparent: string | undefined,
  tracestate: string | undefined,
): Context {
  const m = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  if (!m) return ROOT_CONTEXT;
  const [, traceId, spanId, flags] = m as unknown as [string, string, string, string];
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return ROOT_CONTEXT;
  const sc: SpanContext = {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (tracestate) sc.traceState = createTraceState(tracestate);
  return trace.setSpanContext(ROOT_CONTEXT, sc);
}

/** The trace id of a traceparent header, for log lines. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent ? TRACEPARENT.exec(traceparent.trim())?.[1] : undefined;
}
