// Events sent in the CloudEvents HTTP protocol binding (binary and structured content mode, JSON
// event format), read into what a gateway publish needs. The gateway README lists the rules.
import {
  decodeHeaderValue,
  isTraceparent,
  mediaType,
  SPEC_VERSION,
  STRUCTURED_JSON,
} from "@jetkit/contracts";
import type { FastifyRequest } from "fastify";
import { GatewayErrorCodes, gatewayError } from "../errors.js";

/** Attributes the gateway reads; any other attribute or extension is refused (it would be lost). */
const KNOWN = new Set([
  "specversion",
  "id",
  "source",
  "type",
  "time",
  "datacontenttype",
  "partitionkey",
  "correlationid",
  "causationid",
  "traceparent",
  "tracestate",
]);

/** Attributes jetkit's wire has no place for, with what to do instead. */
const NOT_CARRIED: Record<string, string> = {
  subject:
    "jetkit events carry no CloudEvents subject attribute: the NATS subject is the one the contract of the event's type declares. Leave subject out.",
  dataschema:
    "the event's schema is its contract (ce-type); jetkit writes no dataschema from a client. Leave dataschema out.",
};

/** The event data as sent: protobuf JSON (a JSON value) or protobuf binary. */
export type CloudEventData = { kind: "json"; value: unknown } | { kind: "binary"; bytes: Uint8Array };

/** One CloudEvent of a request, its attributes checked, its data not yet decoded. */
export interface CloudEventRequest {
  mode: "binary" | "structured";
  id: string;
  source: string;
  type: string;
  /** `time`, normalised to UTC with milliseconds (WIRE.md's ce-time). */
  time: Date | undefined;
  partitionKey: string | undefined;
  correlationId: string | undefined;
  causationId: string | undefined;
  /** The distributed tracing extension: the trace the publish continues. */
  traceparent: string | undefined;
  tracestate: string | undefined;
  data: CloudEventData;
}

function bad(attribute: string, message: string): Error {
  return gatewayError(GatewayErrorCodes.BAD_CLOUDEVENT, `CloudEvent attribute ${attribute}: ${message}`, {
    field: attribute,
  });
}

/** Whether a request carries a CloudEvent: structured (`application/cloudevents…`) or binary (`ce-specversion`). */
export function isCloudEventRequest(req: FastifyRequest): boolean {
  return (
    req.headers["ce-specversion"] !== undefined ||
    mediaType(String(req.headers["content-type"] ?? "")).startsWith("application/cloudevents")
  );
}

const TOKEN = /^[\x21-\x7e]{1,256}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A token attribute (id, correlationid, causationid): what jetkit's ce-id rule and the X- headers accept. */
function token(name: string, value: string): string {
  if (!TOKEN.test(value)) {
    throw bad(name, "must be 1-256 printable ASCII characters without spaces (jetkit's ce-id rule).");
  }
  return value;
}

/** Checks the attributes both modes share and returns the event without its data. */
function attributes(mode: "binary" | "structured", a: Map<string, string>): Omit<CloudEventRequest, "data"> {
  for (const name of a.keys()) {
    const why = NOT_CARRIED[name];
    if (why) throw bad(name, why);
    if (!KNOWN.has(name)) {
      throw bad(
        name,
        `the extension ${name} is not part of jetkit's wire contract and would be lost. Send only ${[...KNOWN].join(", ")}.`,
      );
    }
  }
  const required = (name: string) => {
    const v = a.get(name);
    if (!v) throw bad(name, `is required (CloudEvents ${SPEC_VERSION}).`);
    return v;
  };
  const spec = required("specversion");
  if (spec !== SPEC_VERSION)
    throw bad("specversion", `is "${spec}"; the gateway reads CloudEvents ${SPEC_VERSION}.`);
  const id = token("id", required("id"));
  const source = required("source");
  const type = required("type");
  let time: Date | undefined;
  const t = a.get("time");
  if (t !== undefined) {
    const ms = RFC3339.test(t) ? Date.parse(t) : Number.NaN;
    if (Number.isNaN(ms))
      throw bad("time", `"${t}" is not an RFC 3339 timestamp (2026-01-02T03:04:05.000Z).`);
    time = new Date(ms);
  }
  const traceparent = a.get("traceparent");
  if (traceparent !== undefined && !isTraceparent(traceparent)) {
    throw bad("traceparent", "is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>).");
  }
  const optional = (name: string) => {
    const v = a.get(name);
    return v === undefined ? undefined : token(name, v);
  };
  return {
    mode,
    id,
    source,
    type,
    time,
    partitionKey: a.get("partitionkey") || undefined,
    correlationId: optional("correlationid"),
    causationId: optional("causationid"),
    traceparent: traceparent?.trim(),
    tracestate: traceparent ? a.get("tracestate") || undefined : undefined,
  };
}

/** Whether a datacontenttype names protobuf binary, JSON, or neither. */
function dataKind(attribute: string, contentType: string): "binary" | "json" {
  const t = mediaType(contentType);
  if (t === "application/protobuf" || t === "application/x-protobuf") return "binary";
  if (t === "application/json" || t === "text/json") return "json";
  throw bad(
    attribute,
    `"${contentType}" is not an event encoding the gateway reads: application/protobuf (binary) or application/json (protobuf JSON).`,
  );
}

/**
 * Binary content mode (HTTP binding §3.1): each attribute in a `ce-` header, percent-decoded
 * (binding §3.1.3.2), the body the data in `Content-Type`.
 */
function binaryMode(req: FastifyRequest): CloudEventRequest {
  const a = new Map<string, string>();
  for (const [name, raw] of Object.entries(req.headers)) {
    if (!name.startsWith("ce-") || raw === undefined) continue;
    const attribute = name.slice(3);
    if (Array.isArray(raw)) throw bad(attribute, `header ${name} must appear once.`);
    let value: string;
    try {
      value = decodeHeaderValue(name, raw);
    } catch {
      throw bad(attribute, `header ${name} has percent-escapes that are not UTF-8.`);
    }
    a.set(attribute, value);
  }
  // the transport's W3C trace context stands in for an absent tracing extension
  if (!a.has("traceparent") && typeof req.headers.traceparent === "string") {
    a.set("traceparent", req.headers.traceparent);
    if (typeof req.headers.tracestate === "string") a.set("tracestate", req.headers.tracestate);
  }
  if (a.has("datacontenttype")) {
    throw bad(
      "datacontenttype",
      "is the Content-Type header in binary mode; do not send ce-datacontenttype.",
    );
  }
  const event = attributes("binary", a);
  const kind = dataKind("datacontenttype", String(req.headers["content-type"] ?? ""));
  const body = req.body;
  if (kind === "binary") return { ...event, data: { kind, bytes: body as Buffer } };
  return { ...event, data: { kind, value: parseJson("data", String(body ?? "")) } };
}

function parseJson(attribute: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw bad(attribute, `is not valid JSON (${(err as Error).message}).`);
  }
}

/**
 * Structured content mode (HTTP binding §3.2) in the JSON event format: the body is the event,
 * its data in `data` (protobuf JSON) or `data_base64` (protobuf binary, or JSON text).
 */
function structuredMode(req: FastifyRequest): CloudEventRequest {
  const contentType = String(req.headers["content-type"] ?? "");
  if (mediaType(contentType) !== STRUCTURED_JSON) {
    throw gatewayError(
      GatewayErrorCodes.UNSUPPORTED_MEDIA_TYPE,
      `content-type ${contentType} is not read: the gateway takes the JSON event format (${STRUCTURED_JSON}), one event per request (no batches), or binary mode.`,
    );
  }
  const event = parseJson("(event)", String(req.body ?? ""));
  if (typeof event !== "object" || event === null || Array.isArray(event)) {
    throw bad("(event)", `the body of ${STRUCTURED_JSON} must be one JSON object (the event).`);
  }
  const members = event as Record<string, unknown>;
  const a = new Map<string, string>();
  for (const [name, v] of Object.entries(members)) {
    if (name === "data" || name === "data_base64" || v === null) continue;
    if (typeof v === "string") a.set(name, v);
    else if (typeof v === "number" || typeof v === "boolean") a.set(name, String(v));
    else
      throw bad(
        name,
        `must be a string, number or boolean, not ${Array.isArray(v) ? "an array" : typeof v}.`,
      );
  }
  const attrs = attributes("structured", a);
  const hasData = members.data !== undefined && members.data !== null;
  const b64 = members.data_base64;
  const hasB64 = b64 !== undefined && b64 !== null;
  if (hasData && hasB64) throw bad("data", "send either data or data_base64, not both.");
  if (!hasData && !hasB64) throw bad("data", "the event has no data (data or data_base64).");
  // the JSON event format: data without a datacontenttype is JSON
  const kind = dataKind("datacontenttype", a.get("datacontenttype") ?? "application/json");
  if (hasData) {
    if (kind === "binary") {
      throw bad("data", "datacontenttype is protobuf: send the protobuf bytes as data_base64, not data.");
    }
    return { ...attrs, data: { kind: "json", value: members.data } };
  }
  if (typeof b64 !== "string" || !BASE64.test(b64) || b64.length % 4 !== 0) {
    throw bad("data_base64", "is not base64 (RFC 4648, with padding).");
  }
  const bytes = Buffer.from(b64, "base64");
  if (kind === "binary") return { ...attrs, data: { kind, bytes } };
  return { ...attrs, data: { kind, value: parseJson("data_base64", bytes.toString("utf8")) } };
}

/** Reads the CloudEvent of a request ({@link isCloudEventRequest}); throws a coded 400 naming the attribute. */
export function readCloudEvent(req: FastifyRequest): CloudEventRequest {
  return req.headers["ce-specversion"] !== undefined &&
    !mediaType(String(req.headers["content-type"] ?? "")).startsWith("application/cloudevents")
    ? binaryMode(req)
    : structuredMode(req);
}
