import { ContractErrorCodes, JetkitError } from "./errors.js";
import { HeaderDecodeError, percentDecode, percentEncode } from "./percent.js";

/** Header names of an event message on the wire (contracts/WIRE.md §Headers). */
export const EventHeaders = {
  ID: "ce-id",
  SPEC_VERSION: "ce-specversion",
  TYPE: "ce-type",
  SOURCE: "ce-source",
  TIME: "ce-time",
  DATA_CONTENT_TYPE: "ce-datacontenttype",
  /** The registry version the payload was encoded with: `jetkit:registry/<version>#<type>`. */
  DATA_SCHEMA: "ce-dataschema",
  PARTITION_KEY: "ce-partitionkey",
  CORRELATION_ID: "ce-correlationid",
  CAUSATION_ID: "ce-causationid",
  /** W3C Trace Context of the publish span (the transport's own trace headers). */
  TRACEPARENT: "traceparent",
  TRACESTATE: "tracestate",
  /** The same trace context as the CloudEvents distributed tracing extension's attributes. */
  CE_TRACEPARENT: "ce-traceparent",
  CE_TRACESTATE: "ce-tracestate",
  /** Structured content mode: `application/cloudevents+json` (binding §3). */
  CONTENT_TYPE: "content-type",
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
/** The CloudEvents NATS protocol binding version jetkit follows (binary mode is new in it). */
export const NATS_BINDING_VERSION = "1.0.3-wip";
/** Media type of a structured-mode event in the JSON event format. */
export const STRUCTURED_JSON = "application/cloudevents+json";
/**
 * Longest header value jetkit writes from free text, in characters of the percent-encoded
 * (ASCII) value; longer text is cut at a character boundary and ends with `…`.
 */
export const MAX_HEADER_VALUE = 1024;

/**
 * The media type of a content-type value, lower-cased, parameters dropped
 * (`Application/Protobuf; proto=x` -> `application/protobuf`): media types are case-insensitive.
 */
export function mediaType(value: string): string {
  const semi = value.indexOf(";");
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}

/** Whether a datacontenttype names protobuf binary (`application/protobuf`, or `application/x-protobuf`). */
export function isProtobufMediaType(value: string): boolean {
  if (value === CONTENT_TYPE) return true;
  const t = mediaType(value);
  return t === CONTENT_TYPE || t === "application/x-protobuf";
}

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
  /** ce-dataschema: the registry version the payload was encoded with (`registryDataschema`). */
  dataschema?: string | undefined;
}

const CONTROL_RUNS = /[\u0000-\u001f\u007f-\u009f]+/g;

/**
 * A header value written from free text (a key, an id, a reason): each run of control
 * characters (U+0000-U+001F, U+007F-U+009F, which CloudEvents strings may not hold; CR and LF
 * included) becomes one space, the text is trimmed, then percent-encoded per the NATS binding
 * §3.1.3.2 and cut to at most {@link MAX_HEADER_VALUE} ASCII characters without splitting an
 * escape (contracts/WIRE.md §4.1). A value can never inject a header line.
 */
export function headerValue(value: string): string {
  const encoded = percentEncode(value, MAX_HEADER_VALUE);
  if (encoded === value) return value;
  const clean = value.replace(CONTROL_RUNS, " ").trim();
  return clean === value ? encoded : percentEncode(clean, MAX_HEADER_VALUE);
}

/**
 * A received `ce-*` header value decoded per the NATS binding §3.1.3.2: a double-quoted value
 * unquoted, then one round of percent-decoding. Throws `JK_WIRE_HEADERS` naming the header when
 * the escapes are not valid UTF-8.
 */
export function decodeHeaderValue(header: string, value: string): string {
  try {
    return percentDecode(value);
  } catch (err) {
    if (!(err instanceof HeaderDecodeError)) throw err;
    throw new JetkitError(ContractErrorCodes.WIRE_HEADERS, `header ${header} is malformed: ${err.message}.`, {
      details: { header },
    });
  }
}

/** The headers of an event in their wire order, per contracts/WIRE.md. */
export function eventHeaders(input: EventHeaderInput): [string, string][] {
  const time = typeof input.time === "string" ? input.time : input.time.toISOString();
  const h: [string, string][] = [
    [EventHeaders.ID, headerValue(input.id)],
    [EventHeaders.SPEC_VERSION, SPEC_VERSION],
    [EventHeaders.TYPE, headerValue(input.type)],
    [EventHeaders.SOURCE, headerValue(input.source)],
    [EventHeaders.TIME, headerValue(time)],
    [EventHeaders.DATA_CONTENT_TYPE, CONTENT_TYPE],
  ];
  if (input.dataschema) h.push([EventHeaders.DATA_SCHEMA, headerValue(input.dataschema)]);
  if (input.partitionKey) h.push([EventHeaders.PARTITION_KEY, headerValue(input.partitionKey)]);
  if (input.correlationId) h.push([EventHeaders.CORRELATION_ID, headerValue(input.correlationId)]);
  if (input.causationId) h.push([EventHeaders.CAUSATION_ID, headerValue(input.causationId)]);
  if (input.traceparent) {
    // W3C headers as W3C Trace Context writes them; the tracing extension's copies percent-encoded
    const state = input.tracestate ? headerValue(input.tracestate) : "";
    h.push([EventHeaders.TRACEPARENT, input.traceparent]);
    if (input.tracestate) h.push([EventHeaders.TRACESTATE, input.tracestate]);
    h.push([EventHeaders.CE_TRACEPARENT, input.traceparent]);
    if (state) h.push([EventHeaders.CE_TRACESTATE, state]);
  }
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
  /** `ce-dataschema`: the registry version the producer encoded with, e.g. `jetkit:registry/7#shop.order.v1.OrderFulfillmentCompleted`. */
  dataschema?: string | undefined;
}

/**
 * The event attributes of one received message as found, before any check: the first value of
 * each header (`ce-*` values percent-decoded), or the members of a structured-mode event;
 * undefined when absent. An empty value counts as absent.
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
  /** W3C `traceparent`/`tracestate` headers. */
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
  /** The distributed tracing extension's `traceparent`/`tracestate` attributes (`ce-traceparent`). */
  readonly ceTraceparent?: string | undefined;
  readonly ceTracestate?: string | undefined;
  readonly msgId: string | undefined;
  readonly replayOf: string | undefined;
  /** `ce-dataschema` (structured: `dataschema`): the registry version the payload was encoded with. */
  readonly dataschema?: string | undefined;
  /** Set when reading found the message malformed (a bad escape, a broken structured event): thrown by the check. */
  readonly malformed?: JetkitError | undefined;
}

const TRACEPARENT = /^[ \t]*00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}[ \t]*$/;

/** Whether `v` has the shape of a version-00 W3C traceparent. */
export function isTraceparent(v: string | undefined): v is string {
  return v !== undefined && TRACEPARENT.test(v);
}

/**
 * The trace context a received event continues (contracts/WIRE.md §4.2): the W3C `traceparent`
 * header with its `tracestate` when it is a valid traceparent, else the tracing extension's
 * `ce-traceparent` with its `ce-tracestate`. The W3C header wins: it is the hop the message
 * took, which the extension only equals on a single hop.
 */
export function pickTraceContext(v: EventHeaderValues): {
  traceparent: string | undefined;
  tracestate: string | undefined;
} {
  if (isTraceparent(v.traceparent))
    return { traceparent: v.traceparent, tracestate: v.tracestate || undefined };
  if (isTraceparent(v.ceTraceparent))
    return { traceparent: v.ceTraceparent, tracestate: v.ceTracestate || undefined };
  return { traceparent: v.traceparent || undefined, tracestate: v.tracestate || undefined };
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
  if (v.malformed) throw v.malformed;
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
  if (ct && !isProtobufMediaType(ct)) {
    throw new JetkitError(
      ContractErrorCodes.WIRE_HEADERS,
      `header ce-datacontenttype is "${ct}", expected "${CONTENT_TYPE}" (media types match case-insensitively).`,
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
  const trace = pickTraceContext(v);
  return {
    id,
    type,
    source,
    time,
    msgId: v.msgId || id,
    partitionKey: v.partitionKey || undefined,
    correlationId: v.correlationId || undefined,
    causationId: v.causationId || undefined,
    traceparent: trace.traceparent,
    tracestate: trace.tracestate,
    replayOf: v.replayOf || undefined,
    ...(v.dataschema ? { dataschema: v.dataschema } : {}),
  };
}

/**
 * Reads and checks the headers of a received binary-mode event, `get(name)` giving the first
 * value of a header (callers match names case-insensitively, as the binding says). `ce-*` values
 * are percent-decoded. Throws `JK_WIRE_HEADERS` naming the header when a required one is missing
 * or malformed.
 */
export function readEventHeaders(get: (name: string) => string | undefined): ReceivedEventHeaders {
  const ce = (name: string) => {
    const v = get(name);
    return v ? decodeHeaderValue(name, v) : v;
  };
  return checkEventHeaders({
    id: ce(EventHeaders.ID),
    specVersion: ce(EventHeaders.SPEC_VERSION),
    type: ce(EventHeaders.TYPE),
    source: ce(EventHeaders.SOURCE),
    time: ce(EventHeaders.TIME),
    // sdk-go's binary reader takes `content-type` for datacontenttype when the ce- header is absent
    dataContentType: ce(EventHeaders.DATA_CONTENT_TYPE) || get(EventHeaders.CONTENT_TYPE),
    partitionKey: ce(EventHeaders.PARTITION_KEY),
    correlationId: ce(EventHeaders.CORRELATION_ID),
    causationId: ce(EventHeaders.CAUSATION_ID),
    traceparent: get(EventHeaders.TRACEPARENT),
    tracestate: get(EventHeaders.TRACESTATE),
    ceTraceparent: ce(EventHeaders.CE_TRACEPARENT),
    ceTracestate: ce(EventHeaders.CE_TRACESTATE),
    msgId: get(EventHeaders.MSG_ID),
    replayOf: get(EventHeaders.REPLAY_OF),
    dataschema: ce(EventHeaders.DATA_SCHEMA),
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

/**
 * A JetStream header other than Nats-Msg-Id (`Nats-Expected-Stream`, `Nats-TTL`, …): it belongs to
 * the publish or read of the message it is on, and would make a copy's publish fail or expire.
 */
function isServerHeader(name: string): boolean {
  return name.length > 5 && name.slice(0, 5).toLowerCase() === "nats-" && name !== EventHeaders.MSG_ID;
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
    if (dlqNames.has(k) || isServerHeader(k)) continue;
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
    if (dlqNames.has(k) || isServerHeader(k) || k === EventHeaders.MSG_ID || k === EventHeaders.REPLAY_OF)
      continue;
    if (k === EventHeaders.ID) id = v;
    out.push([k, v]);
  }
  out.push(
    [EventHeaders.REPLAY_OF, `${dlqStream}:${dlqSequence}`],
    [EventHeaders.MSG_ID, `replay:${dlqSequence}:${id}`],
  );
  return out;
}
