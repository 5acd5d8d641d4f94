import {
  type Attributes,
  type Context,
  type Counter,
  context,
  type Histogram,
  isSpanContextValid,
  metrics,
  propagation,
  type Span,
  SpanKind,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";
import type { BreakerState } from "./breaker.js";
import { isReservedHeader } from "./headers.js";

const SCOPE = "@jetkit/producers";
const VERSION = "0.1.0";

/**
 * Attribute names of spans and metrics: the messaging semantic conventions where they name the
 * fact, `jetkit.*` for the rest. The consumer SDK uses the same name for the same fact (the
 * table in both READMEs; consumers/test/trace.test.ts compares the spans).
 */
export const Attr = {
  SYSTEM: "messaging.system",
  DESTINATION: "messaging.destination.name",
  OPERATION_TYPE: "messaging.operation.type",
  OPERATION_NAME: "messaging.operation.name",
  MESSAGE_ID: "messaging.message.id",
  CONVERSATION_ID: "messaging.message.conversation_id",
  BODY_SIZE: "messaging.message.body.size",
  CLIENT_ID: "messaging.client.id",
  ERROR_TYPE: "error.type",
  STREAM: "jetkit.stream.name",
  SEQUENCE: "jetkit.stream.sequence",
  DUPLICATE: "jetkit.duplicate",
  ATTEMPTS: "jetkit.attempts",
  EVENT_TYPE: "jetkit.event.type",
} as const;

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2 };

/**
 * The W3C trace context of a span, as WIRE.md puts it in an event's `traceparent`/`tracestate`
 * headers. Written from the span context directly, whatever propagator (or none) the app
 * registered: the wire rules fix these two headers, and the registered propagator adds its own
 * beside them ({@link propagatedHeaders}). A span without a valid context (no tracer provider
 * and no active trace) gives no headers.
 */
export function w3cTraceContext(span: Span): TraceCarrier {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return {};
  const carrier: TraceCarrier = {
    traceparent: `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`,
  };
  const state = sc.traceState?.serialize();
  if (state) carrier.tracestate = state;
  return carrier;
}

/** Carrier of the trace context injected into an event's headers. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
  /**
   * The headers the app's registered propagator wrote (baggage, B3, ...), in its order; absent
   * when none is registered or it writes nothing jetkit does not write itself.
   */
  headers?: [string, string][];
}

/** Names jetkit writes from the span context itself (WIRE.md §4.2): a propagator's copy is dropped. */
const W3C_FIELDS = new Set(["traceparent", "tracestate"]);

const SETTER: TextMapSetter<[string, string][]> = {
  set(carrier, key, value) {
    // A header jetkit writes itself, or a value that cannot be a header value, is not written:
    // the propagator's output is observability, never a reason to fail a publish.
    if (W3C_FIELDS.has(key.toLowerCase()) || isReservedHeader(key) || /[\r\n]/.test(value)) return;
    carrier.push([key, value]);
  },
};

/**
 * The headers the application's registered OpenTelemetry propagator
 * (`propagation.setGlobalPropagator`: baggage, B3, a composite, ...) writes for `span` in
 * `parent` (whose baggage it carries on), other
 * than the W3C `traceparent`/`tracestate` that jetkit writes itself. Undefined when no
 * propagator is registered: the API's default is a no-op propagator, which has no fields; a
 * W3C trace-context propagator alone adds nothing either.
 */
export function propagatedHeaders(parent: Context, span: Span): [string, string][] | undefined {
  const fields = propagation.fields();
  if (fields.length === 0 || fields.every((f) => W3C_FIELDS.has(f.toLowerCase()))) return undefined;
  const out: [string, string][] = [];
  propagation.inject(trace.setSpan(parent, span), out, SETTER);
  return out.length > 0 ? out : undefined;
}

/** The tracer and instruments of one producer (no-ops unless the app installs an OTel SDK). */
export class ProducerTelemetry {
  readonly #tracer = trace.getTracer(SCOPE, VERSION);
  readonly #duration: Histogram;
  readonly #retries: Counter;
  readonly #failures: Counter;
  readonly #base: Attributes;
  readonly #clientId: string;
  /** Per subject: the attributes of its metric points and the messages sent to it. */
  readonly #subjects = new Map<string, { attrs: Attributes; sent: number }>();
  readonly #spanNames = new Map<string, string>();

  constructor(clientId: string, observe: () => { inFlight: number; breaker: BreakerState }) {
    const meter = metrics.getMeter(SCOPE, VERSION);
    this.#clientId = clientId;
    this.#base = { [Attr.SYSTEM]: "nats", [Attr.CLIENT_ID]: clientId };
    this.#duration = meter.createHistogram("messaging.client.operation.duration", {
      description: "Duration of a publish, from the call to its JetStream ack (retries included).",
      unit: "s",
      advice: {
        explicitBucketBoundaries: [
          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
        ],
      },
    });
    // Observed from a per-subject count rather than added to per publish: a synchronous
    // counter hashes its attributes on every add(), once per event on the hot path.
    const sent = meter.createObservableCounter("messaging.client.sent.messages", {
      description: "Events acknowledged by JetStream.",
      unit: "{message}",
    });
    this.#retries = meter.createCounter("jetkit.producer.retries", {
      description: "Publish attempts repeated after a transient failure.",
      unit: "{attempt}",
    });
    this.#failures = meter.createCounter("jetkit.producer.failures", {
      description: "Publishes that failed for good (by error.type).",
      unit: "{message}",
    });
    const inFlight = meter.createObservableUpDownCounter("jetkit.producer.in_flight", {
      description: "Publishes sent and not yet acknowledged.",
      unit: "{message}",
    });
    const breaker = meter.createObservableGauge("jetkit.producer.breaker.state", {
      description: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    });
    meter.addBatchObservableCallback(
      (result) => {
        const now = observe();
        result.observe(inFlight, now.inFlight, this.#base);
        result.observe(breaker, BREAKER_VALUE[now.breaker], this.#base);
        for (const s of this.#subjects.values()) result.observe(sent, s.sent, s.attrs);
      },
      [inFlight, breaker, sent],
    );
  }

  /**
   * Starts the PRODUCER span of a publish and returns it with the trace context to inject. The
   * attributes are one literal of a fixed shape (no spreads): this runs once per event.
   */
  startSend(
    subject: string,
    msgId: string,
    bodySize: number,
    conversationId: string,
    eventType: string,
    parent: Context = context.active(),
  ): { span: Span; carrier: TraceCarrier } {
    const span = this.#tracer.startSpan(
      this.#spanName(subject),
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          [Attr.SYSTEM]: "nats",
          [Attr.CLIENT_ID]: this.#clientId,
          [Attr.DESTINATION]: subject,
          [Attr.OPERATION_TYPE]: "send",
          [Attr.OPERATION_NAME]: "send",
          [Attr.MESSAGE_ID]: msgId,
          [Attr.BODY_SIZE]: bodySize,
          [Attr.CONVERSATION_ID]: conversationId,
          [Attr.EVENT_TYPE]: eventType,
        },
      },
      parent,
    );
    const carrier = w3cTraceContext(span);
    const headers = propagatedHeaders(parent, span);
    if (headers) carrier.headers = headers;
    return { span, carrier };
  }

  /** Records an acknowledged publish: its duration, and one more sent message on its subject. */
  published(subject: string, seconds: number): void {
    const s = this.#subject(subject);
    this.#duration.record(seconds, s.attrs);
    s.sent++;
  }

  /** Counts `n` events a fast-ingest batch confirmed together (no per-event duration to record). */
  sentInBatch(subject: string, n: number): void {
    this.#subject(subject).sent += n;
  }

  #subject(subject: string) {
    let s = this.#subjects.get(subject);
    if (!s) {
      // one attributes object per subject instead of one per publish
      s = { attrs: { ...this.#base, [Attr.DESTINATION]: subject, [Attr.OPERATION_NAME]: "send" }, sent: 0 };
      this.#subjects.set(subject, s);
    }
    return s;
  }

  failed(subject: string, code: string, seconds: number): void {
    const attrs = {
      ...this.#base,
      [Attr.DESTINATION]: subject,
      [Attr.OPERATION_NAME]: "send",
      [Attr.ERROR_TYPE]: code,
    };
    this.#duration.record(seconds, attrs);
    this.#failures.add(1, attrs);
  }

  #spanName(subject: string): string {
    let name = this.#spanNames.get(subject);
    if (name === undefined) {
      name = `send ${subject}`;
      this.#spanNames.set(subject, name);
    }
    return name;
  }

  retried(subject: string, reason: string): void {
    this.#retries.add(1, { ...this.#base, [Attr.DESTINATION]: subject, [Attr.ERROR_TYPE]: reason });
  }
}
