import { fromBinary, toJson } from "@bufbuild/protobuf";
import type { Catalog } from "@jetkit/contracts";
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

/** Decodes a JetStream message by its subject's contract into protobuf JSON. */
export function eventJson(catalog: Catalog, m: JsMsg): EventJson {
  const h = m.headers;
  const out: EventJson = {
    subject: m.subject,
    seq: m.seq,
    type: h?.get("ce-type") || undefined,
    id: h?.get("ce-id") || undefined,
    time: h?.get("ce-time") || undefined,
    correlationId: h?.get("ce-correlationid") || undefined,
  };
  const spec = catalog.findBySubject(m.subject);
  if (!spec) {
    out.error = "no contract for this subject";
    return out;
  }
  try {
    out.event = toJson(spec.schema, fromBinary(spec.schema, m.data), { registry: catalog.registry });
  } catch (err) {
    out.error = `undecodable: ${(err as Error).message}`;
  }
  return out;
}
