import {
  type Attributes,
  type Counter,
  context,
  type Histogram,
  metrics,
  propagation,
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

/** Carrier of the W3C trace context injected into an event's headers. */
export interface TraceCarrier {
  traceparent?: string;
  tracestate?: string;
}

/** The tracer and instruments of one producer (no-ops unless the app installs an OTel SDK). */
export class ProducerTelemetry {
  readonly #tracer = trace.getTracer(SCOPE, VERSION);
  readonly #duration: Histogram;
  readonly #sent: Counter;
  readonly #retries: Counter;
  readonly #failures: Counter;
  readonly #base: Attributes;
  readonly #sendAttrs = new Map<string, Attributes>();

  constructor(clientId: string, observe: () => { inFlight: number; breaker: BreakerState }) {
    const meter = metrics.getMeter(SCOPE, VERSION);
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
    this.#sent = meter.createCounter("messaging.client.sent.messages", {
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
      },
      [inFlight, breaker],
    );
  }

  /** Starts the PRODUCER span of a publish and returns it with the trace context to inject. */
  startSend(subject: string, attrs: Attributes): { span: Span; carrier: TraceCarrier } {
    const parent = context.active();
    const span = this.#tracer.startSpan(
      `send ${subject}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          ...this.#base,
          [Attr.DESTINATION]: subject,
          [Attr.OPERATION_TYPE]: "send",
          [Attr.OPERATION_NAME]: "send",
          ...attrs,
        },
      },
      parent,
    );
    const carrier: TraceCarrier = {};
    propagation.inject(trace.setSpan(parent, span), carrier);
    return { span, carrier };
  }

  published(subject: string, seconds: number): void {
    // one attributes object per subject instead of one per publish
    let attrs = this.#sendAttrs.get(subject);
    if (!attrs) {
      attrs = { ...this.#base, [Attr.DESTINATION]: subject, [Attr.OPERATION_NAME]: "send" };
      this.#sendAttrs.set(subject, attrs);
    }
    this.#duration.record(seconds, attrs);
    this.#sent.add(1, attrs);
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

  retried(subject: string, reason: string): void {
    this.#retries.add(1, { ...this.#base, [Attr.DESTINATION]: subject, [Attr.ERROR_TYPE]: reason });
  }
}
