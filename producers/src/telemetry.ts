import {
  type Attributes,
  type Counter,
  context,
  type Histogram,
  isSpanContextValid,
  metrics,
  type Span,
  SpanKind,
  trace,
} from "@opentelemetry/api";
import type { BreakerState } from "./breaker.js";

const SCOPE = "@jetkit/producers";
const VERSION = "0.1.0";

/** Messaging semantic-convention attribute names used on spans and metrics. */
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
  STREAM: "jetkit.stream",
  SEQUENCE: "jetkit.seq",
  DUPLICATE: "jetkit.duplicate",
  ATTEMPTS: "jetkit.attempts",
  EVENT_TYPE: "jetkit.event.type",
} as const;

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, "half-open": 1, open: 2 };

/**
 * The W3C trace context of a span, as WIRE.md puts it in an event's `traceparent`/`tracestate`
 * headers. Written from the span context directly rather than through the app's global
 * propagator: the wire format is W3C whatever propagator (or none) the app installed, and it
 * saves a context and a carrier walk per event. A span without a valid context (no tracer
 * provider and no active trace) gives no headers.
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

/** Carrier of the W3C trace context injected into an event's headers. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
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
  ): { span: Span; carrier: TraceCarrier } {
    const parent = context.active();
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
    return { span, carrier: w3cTraceContext(span) };
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
