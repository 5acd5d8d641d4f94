import { ContractErrorCodes, JetkitError } from "./errors.js";

/** Header names of an event message on the wire (contracts/WIRE.md §Headers). */
export const EventHeaders = {
  ID: "ce-id",
  SPEC_VERSION: "ce-specversion",
  TYPE: "ce-type",
  SOURCE: "ce-source",
  TIME: "ce-time",
  DATA_CONTENT_TYPE: "ce-datacontenttype",
  PARTITION_KEY: "ce-partitionkey",
  CORRELATION_ID: "ce-correlationid",
  CAUSATION_ID: "ce-causationid",
  TRACEPARENT: "traceparent",
  TRACESTATE: "tracestate",
  /** JetStream de-duplication id; equals ce-id except on a replay of a dead letter. */
  MSG_ID: "Nats-Msg-Id",
  /** Set on a replay of a dead letter: `<DLQ stream>:<DLQ sequence>`. */
  REPLAY_OF: "Jetkit-Replay-Of",
} as const;

/** Extra headers of a dead letter (contracts/WIRE.md §Dead letters). */
export const DeadLetterHeaders = {
  STREAM: "Jetkit-Dlq-Stream",
  SEQUENCE: "Jetkit-Dlq-Sequence",
  SUBJECT: "Jetkit-Dlq-Subject",
  CONSUMER: "Jetkit-Dlq-Consumer",
  DELIVERIES: "Jetkit-Dlq-Deliveries",
  FAILURE_CLASS: "Jetkit-Dlq-Failure-Class",
  REASON: "Jetkit-Dlq-Reason",
  FIRST_FAILURE: "Jetkit-Dlq-First-Failure",
  LAST_FAILURE: "Jetkit-Dlq-Last-Failure",
} as const;

/** Values of `Jetkit-Dlq-Failure-Class` (enum jetkit.v1.FailureClass, lower-cased, prefix dropped). */
export const FailureClasses = [
  "undecodable",
  "unknown_type",
  "contract_violation",
  "handler_exhausted",
  "handler_permanent",
  "max_deliveries",
] as const;
export type FailureClass = (typeof FailureClasses)[number];

export const SPEC_VERSION = "1.0";
export const CONTENT_TYPE = "application/protobuf";
/** Longest header value jetkit writes; longer free text (a failure reason) is cut. */
export const MAX_HEADER_VALUE = 1024;

/** What the headers of one event are built from. */
export interface EventHeaderInput {
  /** ce-id: unique per event (a UUIDv7 unless the caller supplies one). */
  id: string;
  /** ce-type: fully-qualified message name. */
  type: string;
  /** ce-source: URI-reference of the producing service, e.g. `/jetkit/checkout`. */
  source: string;
  /** ce-time: when the event happened. */
  time: Date | string;
  partitionKey?: string | undefined;
  correlationId?: string | undefined;
  causationId?: string | undefined;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
  /** Nats-Msg-Id; defaults to `id`. */
  msgId?: string | undefined;
}

/**
 * A header value that is safe on the wire: no CR/LF or other control characters (a value must
 * not be able to inject a header), trimmed, at most {@link MAX_HEADER_VALUE} characters.
 */
export function headerValue(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return clean.length > MAX_HEADER_VALUE ? `${clean.slice(0, MAX_HEADER_VALUE - 1)}…` : clean;
}

/** The headers of an event in their wire order, per contracts/WIRE.md. */
export function eventHeaders(input: EventHeaderInput): [string, string][] {
  const time = typeof input.time === "string" ? input.time : input.time.toISOString();
  const h: [string, string][] = [
    [EventHeaders.ID, input.id],
    [EventHeaders.SPEC_VERSION, SPEC_VERSION],
    [EventHeaders.TYPE, input.type],
    [EventHeaders.SOURCE, input.source],
    [EventHeaders.TIME, time],
    [EventHeaders.DATA_CONTENT_TYPE, CONTENT_TYPE],
  ];
  if (input.partitionKey) h.push([EventHeaders.PARTITION_KEY, headerValue(input.partitionKey)]);
  if (input.correlationId) h.push([EventHeaders.CORRELATION_ID, headerValue(input.correlationId)]);
  if (input.causationId) h.push([EventHeaders.CAUSATION_ID, headerValue(input.causationId)]);
  if (input.traceparent) h.push([EventHeaders.TRACEPARENT, input.traceparent]);
  if (input.tracestate) h.push([EventHeaders.TRACESTATE, input.tracestate]);
  h.push([EventHeaders.MSG_ID, input.msgId ?? input.id]);
  return h;
}

/** The CloudEvents attributes of a received event. */
export interface ReceivedEventHeaders {
  id: string;
  type: string;
  source: string;
  time: string;
  msgId: string;
  partitionKey?: string | undefined;
  correlationId?: string | undefined;
  causationId?: string | undefined;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
  replayOf?: string | undefined;
}

/**
 * The event headers of one received message as found, before any check: the first value of each
 * header, undefined when absent. An empty value counts as absent.
 */
export interface EventHeaderValues {
  readonly id: string | undefined;
  readonly specVersion: string | undefined;
  readonly type: string | undefined;
  readonly source: string | undefined;
  readonly time: string | undefined;
  readonly dataContentType: string | undefined;
  readonly partitionKey: string | undefined;
  readonly correlationId: string | undefined;
  readonly causationId: string | undefined;
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
  readonly msgId: string | undefined;
  readonly replayOf: string | undefined;
}

function missing(name: string): JetkitError {
  return new JetkitError(
    ContractErrorCodes.WIRE_HEADERS,
    `header ${name} is missing; every jetkit event carries the CloudEvents headers of contracts/WIRE.md.`,
    { details: { header: name } },
  );
}

/** A ce-id: 1-256 printable ASCII characters without spaces (`/^[\x21-\x7e]{1,256}$/`). */
function isIdToken(id: string): boolean {
  if (id.length > 256) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return id.length > 0;
}

/**
 * Checks the headers of a received event and returns its attributes. Throws `JK_WIRE_HEADERS`
 * naming the header when a required one is missing or malformed. Every optional attribute is
 * present in the result, undefined when its header is absent (one object shape per event).
 */
export function checkEventHeaders(v: EventHeaderValues): ReceivedEventHeaders {
  const spec = v.specVersion;
  if (!spec) throw missing(EventHeaders.SPEC_VERSION);
  if (spec !== SPEC_VERSION) {
    throw new JetkitError(
      ContractErrorCodes.WIRE_HEADERS,
      `header ce-specversion is "${spec}", expected "${SPEC_VERSION}".`,
      { details: { header: EventHeaders.SPEC_VERSION } },
    );
  }
  const ct = v.dataContentType;
  if (ct && ct !== CONTENT_TYPE) {
    throw new JetkitError(
      ContractErrorCodes.WIRE_HEADERS,
      `header ce-datacontenttype is "${ct}", expected "${CONTENT_TYPE}".`,
      { details: { header: EventHeaders.DATA_CONTENT_TYPE } },
    );
  }
  const id = v.id;
  if (!id) throw missing(EventHeaders.ID);
  if (!isIdToken(id)) {
    throw new JetkitError(
      ContractErrorCodes.WIRE_HEADERS,
      "header ce-id must be 1-256 printable ASCII characters without spaces.",
      { details: { header: EventHeaders.ID } },
    );
  }
  const type = v.type;
  if (!type) throw missing(EventHeaders.TYPE);
  const source = v.source;
  if (!source) throw missing(EventHeaders.SOURCE);
  const time = v.time;
  if (!time) throw missing(EventHeaders.TIME);
  return {
    id,
    type,
    source,
    time,
    msgId: v.msgId || id,
    partitionKey: v.partitionKey || undefined,
    correlationId: v.correlationId || undefined,
    causationId: v.causationId || undefined,
    traceparent: v.traceparent || undefined,
    tracestate: v.tracestate || undefined,
    replayOf: v.replayOf || undefined,
  };
}

/**
 * Reads and checks the headers of a received event, `get(name)` giving the first value of a
 * header. Throws `JK_WIRE_HEADERS` naming the header when a required one is missing or malformed.
 */
export function readEventHeaders(get: (name: string) => string | undefined): ReceivedEventHeaders {
  return checkEventHeaders({
    id: get(EventHeaders.ID),
    specVersion: get(EventHeaders.SPEC_VERSION),
    type: get(EventHeaders.TYPE),
    source: get(EventHeaders.SOURCE),
    time: get(EventHeaders.TIME),
    dataContentType: get(EventHeaders.DATA_CONTENT_TYPE),
    partitionKey: get(EventHeaders.PARTITION_KEY),
    correlationId: get(EventHeaders.CORRELATION_ID),
    causationId: get(EventHeaders.CAUSATION_ID),
    traceparent: get(EventHeaders.TRACEPARENT),
    tracestate: get(EventHeaders.TRACESTATE),
    msgId: get(EventHeaders.MSG_ID),
    replayOf: get(EventHeaders.REPLAY_OF),
  });
}

/** Why and where a message is dead-lettered (contracts/WIRE.md §5). */
export interface DeadLetterInput {
  stream: string;
  sequence: number;
  subject: string;
  consumer: string;
  deliveries: number;
  failureClass: FailureClass;
  reason: string;
  firstFailure: Date | string;
  lastFailure: Date | string;
}

/**
 * The de-duplication id of a dead letter: one per original message and consumer, so a consumer
 * dead-lettering the same message twice (after a crash) stores it once, while two services
 * failing on the same message each keep their dead letter.
 */
export function deadLetterMsgId(stream: string, sequence: number, consumer: string): string {
  return `dlq:${stream}:${sequence}:${consumer}`;
}

const rfc3339 = (t: Date | string) => (typeof t === "string" ? t : t.toISOString());

/**
 * The headers of a dead letter: the original headers in their order (Nats-Msg-Id replaced by
 * `dlq:<stream>:<seq>:<consumer>`, earlier Jetkit-Dlq-* dropped), then the Jetkit-Dlq-* headers.
 */
export function deadLetterHeaders(
  original: Iterable<[string, string]>,
  input: DeadLetterInput,
): [string, string][] {
  const msgId = deadLetterMsgId(input.stream, input.sequence, input.consumer);
  const dlqNames = new Set<string>(Object.values(DeadLetterHeaders));
  const out: [string, string][] = [];
  let sawMsgId = false;
  for (const [k, v] of original) {
    if (dlqNames.has(k)) continue;
    if (k === EventHeaders.MSG_ID) {
      out.push([k, msgId]);
      sawMsgId = true;
    } else out.push([k, v]);
  }
  if (!sawMsgId) out.push([EventHeaders.MSG_ID, msgId]);
  out.push(
    [DeadLetterHeaders.STREAM, input.stream],
    [DeadLetterHeaders.SEQUENCE, String(input.sequence)],
    [DeadLetterHeaders.SUBJECT, input.subject],
    [DeadLetterHeaders.CONSUMER, input.consumer],
    [DeadLetterHeaders.DELIVERIES, String(input.deliveries)],
    [DeadLetterHeaders.FAILURE_CLASS, input.failureClass],
    [DeadLetterHeaders.REASON, headerValue(input.reason)],
    [DeadLetterHeaders.FIRST_FAILURE, rfc3339(input.firstFailure)],
    [DeadLetterHeaders.LAST_FAILURE, rfc3339(input.lastFailure)],
  );
  return out;
}

/**
 * The headers of a replay of the dead letter stored at `dlqSequence` (contracts/WIRE.md §6): the
 * original ce-* headers, `Jetkit-Replay-Of`, and a new `Nats-Msg-Id`.
 */
export function replayHeaders(
  deadLetter: Iterable<[string, string]>,
  dlqSequence: number,
  dlqStream = "DLQ",
): [string, string][] {
  const dlqNames = new Set<string>(Object.values(DeadLetterHeaders));
  const out: [string, string][] = [];
  let id = "";
  for (const [k, v] of deadLetter) {
    if (dlqNames.has(k) || k === EventHeaders.MSG_ID || k === EventHeaders.REPLAY_OF) continue;
    if (k === EventHeaders.ID) id = v;
    out.push([k, v]);
  }
  out.push(
    [EventHeaders.REPLAY_OF, `${dlqStream}:${dlqSequence}`],
    [EventHeaders.MSG_ID, `replay:${dlqSequence}:${id}`],
  );
  return out;
}
