import { fromBinary, toJson } from "@bufbuild/protobuf";
import { type Catalog, headerLookup, type ReceivedEvent, readEvent } from "@jetkit/contracts";
import type { JsMsg } from "@nats-io/jetstream";

/** How a stored event is shown to HTTP clients (SSE `data:` and pull results). */
export interface EventJson {
  subject: string;
  seq: number;
  /** ce-type */
  type: string | undefined;
  /** ce-id */
  id: string | undefined;
  time: string | undefined;
  correlationId: string | undefined;
  /** The event in protobuf JSON; absent when the payload cannot be decoded (then `error` says why). */
  event?: unknown;
  error?: string;
}

/**
 * Decodes a JetStream message by its subject's contract into protobuf JSON. The message is read
 * as contracts/WIRE.md §4 says: binary or structured mode (a CloudEvents SDK's NATS sender),
 * header names in any case, `ce-*` values percent-decoded. A message whose attributes cannot be
 * read is shown from its raw headers and body.
 */
export function eventJson(catalog: Catalog, m: JsMsg): EventJson {
  const pairs: [string, string][] = [];
  for (const [k, v] of m.headers ?? []) if (v[0] !== undefined) pairs.push([k, v[0]]);
  let read: ReceivedEvent | undefined;
  let unreadable: string | undefined;
  try {
    read = readEvent(pairs, m.data);
  } catch (err) {
    unreadable = (err as Error).message;
  }
  const get = headerLookup(pairs);
  const out: EventJson = {
    subject: m.subject,
    seq: m.seq,
    type: read?.headers.type ?? (get("ce-type") || undefined),
    id: read?.headers.id ?? (get("ce-id") || undefined),
    time: read?.headers.time ?? (get("ce-time") || undefined),
    correlationId: read ? read.headers.correlationId : get("ce-correlationid") || undefined,
  };
  const spec = catalog.findBySubject(m.subject);
  if (!spec) {
    out.error = "no contract for this subject";
    return out;
  }
  try {
    out.event = toJson(spec.schema, fromBinary(spec.schema, read?.data ?? m.data), {
      registry: catalog.registry,
    });
  } catch (err) {
    out.error = `undecodable: ${(err as Error).message}${unreadable ? ` (${unreadable})` : ""}`;
  }
  return out;
}
