// Reading a received message in either content mode (contracts/WIRE.md §4), for readers that
// hold its headers as a list (tools, the Go and Rust helpers do the same); the consumer SDK
// reads the header block in one pass and ends in the same checks.
import { isStructured, readStructuredEvent } from "./structured.js";
import { checkEventHeaders, EventHeaders, type ReceivedEventHeaders, readEventHeaders } from "./wire.js";

/** A received event: its checked attributes and its data (the protobuf payload). */
export interface ReceivedEvent {
  headers: ReceivedEventHeaders;
  data: Uint8Array;
}

/**
 * The first value of each header, by lower-cased name: header names match case-insensitively
 * (CloudEvents NATS binding §3.1.3.1).
 */
export function headerLookup(
  headers: Iterable<readonly [string, string]>,
): (name: string) => string | undefined {
  const first = new Map<string, string>();
  for (const [k, v] of headers) {
    const n = k.toLowerCase();
    if (!first.has(n)) first.set(n, v);
  }
  return (name) => first.get(name.toLowerCase());
}

/**
 * Reads and checks a received message: structured mode when its content type says so (or it has
 * no CloudEvents headers and a JSON object body), binary mode otherwise. Throws
 * `JK_WIRE_HEADERS` / `JK_WIRE_STRUCTURED` saying what is wrong.
 */
export function readEvent(headers: Iterable<readonly [string, string]>, body: Uint8Array): ReceivedEvent {
  const get = headerLookup(headers);
  const contentType = get(EventHeaders.CONTENT_TYPE);
  if (isStructured(contentType, get(EventHeaders.SPEC_VERSION), body)) {
    const e = readStructuredEvent(contentType, body, {
      traceparent: get(EventHeaders.TRACEPARENT),
      tracestate: get(EventHeaders.TRACESTATE),
      msgId: get(EventHeaders.MSG_ID),
      replayOf: get(EventHeaders.REPLAY_OF),
    });
    return { headers: checkEventHeaders(e.attributes), data: e.data };
  }
  return { headers: readEventHeaders(get), data: body };
}
