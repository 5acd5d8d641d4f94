import type { ReceivedEventHeaders } from "@jetkit/contracts";
import type { MsgHdrs } from "@nats-io/nats-core";
import {
  type Context,
  createTraceState,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type SpanContext,
  type TextMapGetter,
  TraceFlags,
  trace,
} from "@opentelemetry/api";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Names of the W3C trace context, which jetkit reads from the event itself (WIRE.md §4.2). */
const W3C_FIELDS = new Set(["traceparent", "tracestate"]);

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

/** What the registered propagator reads from: the event's trace context and its NATS headers. */
interface MessageCarrier {
  wire: ReceivedEventHeaders;
  headers: () => MsgHdrs | undefined;
  /** The NATS headers by lower-cased name, first value of each; made on the first look-up. */
  byName?: Map<string, string>;
}

function headersByName(c: MessageCarrier): Map<string, string> {
  if (c.byName) return c.byName;
  const byName = new Map<string, string>();
  for (const [k, v] of c.headers() ?? []) {
    const name = k.toLowerCase();
    // the first value of a name repeated in any case, as for every header jetkit reads
    if (!byName.has(name) && v[0] !== undefined) byName.set(name, v[0]);
  }
  c.byName = byName;
  return byName;
}

const GETTER: TextMapGetter<MessageCarrier> = {
  get(c, key) {
    const name = key.toLowerCase();
    // The W3C context as the wire rules pick it: the header, else ce-traceparent, or the
    // structured event's attribute, so a W3C propagator continues what jetkit continues.
    if (name === "traceparent") return c.wire.traceparent;
    if (name === "tracestate") return c.wire.tracestate;
    return headersByName(c).get(name);
  },
  keys(c) {
    return [...headersByName(c).keys()];
  },
};

/**
 * The parent context of a process span: the creation context the producer attached.
 *
 * With a propagator registered (`propagation.setGlobalPropagator`: baggage, B3, a composite,
 * ...), the context it extracts from the message's headers (names matched case-insensitively),
 * its baggage included; when it finds no trace in them (a baggage-only propagator, an event
 * with W3C headers only), the W3C trace context of WIRE.md §4.2 stands in. With none (the API's
 * no-op propagator, which has no fields) or a W3C one alone: the W3C trace context, read
 * without a carrier walk. `headers` is only called when the propagator asks for a header that
 * jetkit does not read itself.
 */
export function extractParent(wire: ReceivedEventHeaders, headers: () => MsgHdrs | undefined): Context {
  const w3c = extractTraceContext(wire.traceparent, wire.tracestate);
  const fields = propagation.fields();
  if (fields.length === 0 || fields.every((f) => W3C_FIELDS.has(f.toLowerCase()))) return w3c;
  const ctx = propagation.extract(ROOT_CONTEXT, { wire, headers }, GETTER);
  const found = trace.getSpanContext(ctx);
  if (found && isSpanContextValid(found)) return ctx;
  const sc = trace.getSpanContext(w3c);
  return sc ? trace.setSpanContext(ctx, sc) : ctx;
}

/** The trace id of a traceparent header, for log lines. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent ? TRACEPARENT.exec(traceparent.trim())?.[1] : undefined;
}
