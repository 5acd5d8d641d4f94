import {
  type Attributes,
  type Counter,
  createNoopMeter,
  type Histogram,
  metrics,
  type ObservableGauge,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import type { ResolvedOptions } from "./options.js";

const SCOPE = "@jetkit/consumers";

/**
 * Attribute names of spans and metrics: the messaging semantic conventions where they name the
 * fact, `jetkit.*` for the rest. The producer SDK uses the same name for the same fact (the
 * table in both READMEs; test/trace.test.ts compares a send span with its process span).
 */
export const Attr = {
  SYSTEM: "messaging.system",
  DESTINATION: "messaging.destination.name",
  CONSUMER_GROUP: "messaging.consumer.group.name",
  OPERATION_TYPE: "messaging.operation.type",
  OPERATION_NAME: "messaging.operation.name",
  MESSAGE_ID: "messaging.message.id",
  CONVERSATION_ID: "messaging.message.conversation_id",
  BODY_SIZE: "messaging.message.body.size",
  ERROR_TYPE: "error.type",
  EVENT_TYPE: "jetkit.event.type",
  STREAM: "jetkit.stream.name",
  SEQUENCE: "jetkit.stream.sequence",
  DELIVERY_COUNT: "jetkit.delivery_count",
  DUPLICATE: "jetkit.duplicate",
  OUTCOME: "jetkit.outcome",
} as const;
/** The class of the API's no-op histogram, which every meter without a provider hands out. */
const NoopHistogram = createNoopMeter().createHistogram("jetkit.probe").constructor;

/** The consumer's tracer and metric instruments (messaging semantic conventions where they exist). */
export interface Telemetry {
  tracer: Tracer;
  /** `messaging.process.duration` in seconds, per subject and outcome. */
  duration: Histogram;
  /** False when `duration` records nowhere (no meter provider): handlers are then not timed. */
  timed: boolean;
  acks: Counter;
  naks: Counter;
  redeliveries: Counter;
  deadLetters: Counter;
  duplicates: Counter;
  lag: ObservableGauge;
  ackPending: ObservableGauge;
  /** Partitioned consumer groups: partitions acquired, released (handed over) or lost, per change. */
  partitionChanges: Counter;
  /** Partitioned consumer groups: partitions this process owns. */
  partitionsOwned: ObservableGauge;
}

export function createTelemetry(o: ResolvedOptions): Telemetry {
  const tracer = (o.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE);
  const meter = (o.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE);
  const duration = meter.createHistogram("messaging.process.duration", {
    unit: "s",
    description: "Handler duration per message",
  });
  return {
    tracer,
    duration,
    timed: !(duration instanceof NoopHistogram),
    acks: meter.createCounter("jetkit.consumer.acks", { description: "Messages acknowledged" }),
    naks: meter.createCounter("jetkit.consumer.naks", { description: "Messages nak'd for a later retry" }),
    redeliveries: meter.createCounter("jetkit.consumer.redeliveries", {
      description: "Deliveries with a delivery count above 1",
    }),
    deadLetters: meter.createCounter("jetkit.consumer.dead_letters", {
      description: "Messages moved to the DLQ, per failure class",
    }),
    duplicates: meter.createCounter("jetkit.consumer.duplicates", {
      description: "Messages acked without running the handler (effect already recorded)",
    }),
    lag: meter.createObservableGauge("jetkit.consumer.lag", {
      description: "Messages not yet delivered to the durable (num_pending)",
    }),
    ackPending: meter.createObservableGauge("jetkit.consumer.ack_pending", {
      description: "Messages delivered and not yet acknowledged (num_ack_pending)",
    }),
    partitionChanges: meter.createCounter("jetkit.consumer.group.partition_changes", {
      description: "Partitions acquired, released to another member, or lost to one (jetkit.change)",
    }),
    partitionsOwned: meter.createObservableGauge("jetkit.consumer.group.partitions_owned", {
      description: "Partitions of the consumer group this process owns",
    }),
  };
}

/** Base attributes of every span and metric point of one message. */
export function messageAttributes(durable: string, subject: string): Attributes {
  return {
    [Attr.SYSTEM]: "nats",
    [Attr.DESTINATION]: subject,
    [Attr.CONSUMER_GROUP]: durable,
  };
}

/**
 * `error.type` of a handler failure: low cardinality, as the conventions ask: the code of a
 * coded error (a `JetkitError`, a Node system error), else the error's class name.
 */
export function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.length > 0) return code;
  return error instanceof Error ? error.name : "_OTHER";
}
