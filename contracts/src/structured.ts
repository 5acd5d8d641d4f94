// Structured content mode (CloudEvents NATS binding 1.0.3-wip §3.2, JSON event format):
// contracts/WIRE.md §4.3.
import { ContractErrorCodes, JetkitError } from "./errors.js";
import { type EventHeaderValues, mediaType, STRUCTURED_JSON } from "./wire.js";

/** A structured-mode event: its attributes (as the headers of binary mode give them) and its data. */
export interface StructuredEvent {
  attributes: EventHeaderValues;
  /** The event data: the protobuf payload, from `data_base64`. */
  data: Uint8Array;
}

/** Transport headers that stay outside the event in structured mode. */
export interface TransportHeaders {
  traceparent?: string | undefined;
  tracestate?: string | undefined;
  msgId?: string | undefined;
  replayOf?: string | undefined;
}

function refused(message: string, member?: string): JetkitError {
  return new JetkitError(ContractErrorCodes.WIRE_STRUCTURED, `structured event: ${message}`, {
    details: member ? { member } : {},
  });
}

/**
 * Whether a message is in structured mode: its `content-type` header names a CloudEvents event
 * format (`application/cloudevents…`, case-insensitively, as binding §3 says); or it has neither
 * that header nor `ce-specversion` and its body is a JSON object, which is how CloudEvents SDKs
 * write structured events without a content-type header (sdk-go v2's NATS JetStream sender).
 */
export function isStructured(
  contentType: string | undefined,
  specVersion: string | undefined,
  body: Uint8Array,
): boolean {
  if (contentType) return mediaType(contentType).startsWith("application/cloudevents");
  if (specVersion) return false;
  for (const b of body) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b; // "{"
  }
  return false;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** An attribute's canonical string: CloudEvents JSON allows strings, numbers and booleans. */
function attribute(event: Record<string, unknown>, name: string): string | undefined {
  const v = event[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw refused(`member "${name}" must be a string, number or boolean, got ${typeof v}.`, name);
}

/**
 * Reads a structured-mode event in the JSON event format. The event's attributes take the place
 * of the `ce-*` headers (their values are JSON strings, never percent-encoded); `transport`
 * gives the NATS headers that stay outside the event (W3C trace context, Nats-Msg-Id,
 * Jetkit-Replay-Of). The data must be `data_base64` (jetkit events are protobuf binary).
 * Throws `JK_WIRE_STRUCTURED` saying what is wrong.
 */
export function readStructuredEvent(
  contentType: string | undefined,
  body: Uint8Array,
  transport: TransportHeaders = {},
): StructuredEvent {
  if (contentType) {
    const t = mediaType(contentType);
    if (t !== STRUCTURED_JSON) {
      throw refused(
        `content-type "${contentType}" is not supported: jetkit reads the JSON event format (${STRUCTURED_JSON}) in structured mode, and batches not at all (the NATS binding has no batch mode). Send ${STRUCTURED_JSON} or binary mode.`,
      );
    }
  }
  let event: unknown;
  try {
    event = JSON.parse(utf8.decode(body));
  } catch (err) {
    throw refused(`the body is not UTF-8 JSON: ${(err as Error).message}.`);
  }
  if (typeof event !== "object" || event === null || Array.isArray(event)) {
    throw refused("the body must be a JSON object (the JSON event format).");
  }
  const e = event as Record<string, unknown>;
  let data: Uint8Array;
  if (e.data_base64 !== undefined && e.data_base64 !== null) {
    if (e.data !== undefined) throw refused('it has both "data" and "data_base64".', "data");
    const b64 = e.data_base64;
    if (typeof b64 !== "string" || b64.length % 4 !== 0 || !BASE64.test(b64)) {
      throw refused('member "data_base64" is not base64.', "data_base64");
    }
    data = Uint8Array.from(Buffer.from(b64, "base64"));
  } else if (e.data !== undefined && e.data !== null) {
    throw refused(
      'it carries "data" as JSON; jetkit events are protobuf binary: put the encoded event in "data_base64" with datacontenttype application/protobuf.',
      "data",
    );
  } else data = new Uint8Array(0);
  return {
    attributes: {
      id: attribute(e, "id"),
      specVersion: attribute(e, "specversion"),
      type: attribute(e, "type"),
      source: attribute(e, "source"),
      time: attribute(e, "time"),
      dataContentType: attribute(e, "datacontenttype"),
      partitionKey: attribute(e, "partitionkey"),
      correlationId: attribute(e, "correlationid"),
      causationId: attribute(e, "causationid"),
      traceparent: transport.traceparent,
      tracestate: transport.tracestate,
      ceTraceparent: attribute(e, "traceparent"),
      ceTracestate: attribute(e, "tracestate"),
      msgId: transport.msgId,
      replayOf: transport.replayOf,
      dataschema: attribute(e, "dataschema"),
    },
    data,
  };
}

/** What a structured-mode event is written from: the attributes of binary mode, unencoded. */
export interface StructuredEventInput {
  id: string;
  type: string;
  source: string;
  time: string;
  partitionKey?: string | undefined;
  correlationId?: string | undefined;
  causationId?: string | undefined;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
  dataschema?: string | undefined;
}

/**
 * The body of a structured-mode event in the JSON event format (members in the order of the
 * binary-mode headers, the payload as `data_base64`). The message carries it with
 * `content-type: application/cloudevents+json`, the W3C trace headers and `Nats-Msg-Id`
 * ({@link structuredHeaders}).
 */
export function structuredEventBody(input: StructuredEventInput, payload: Uint8Array): Uint8Array {
  const e: Record<string, string> = {
    specversion: "1.0",
    id: input.id,
    source: input.source,
    type: input.type,
    time: input.time,
    datacontenttype: "application/protobuf",
  };
  if (input.dataschema) e.dataschema = input.dataschema;
  if (input.partitionKey) e.partitionkey = input.partitionKey;
  if (input.correlationId) e.correlationid = input.correlationId;
  if (input.causationId) e.causationid = input.causationId;
  if (input.traceparent) {
    e.traceparent = input.traceparent;
    if (input.tracestate) e.tracestate = input.tracestate;
  }
  e.data_base64 = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("base64");
  return Buffer.from(JSON.stringify(e), "utf8");
}

/**
 * The NATS headers of a structured-mode event, from the headers binary mode would write:
 * `content-type: application/cloudevents+json` first, then every header that is not a
 * CloudEvents attribute (`ce-*`, now in the body) in its order: W3C trace context,
 * Nats-Msg-Id, a caller's own headers.
 */
export function structuredHeaders(binary: readonly (readonly [string, string])[]): [string, string][] {
  const out: [string, string][] = [["content-type", STRUCTURED_JSON]];
  for (const [k, v] of binary) {
    if (k.length > 3 && k.slice(0, 3).toLowerCase() === "ce-") continue;
    out.push([k, v]);
  }
  return out;
}
