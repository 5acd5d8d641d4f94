import { type JsonValue, toJson } from "@bufbuild/protobuf";
import type { Catalog } from "@jetkit/contracts";

/** A stored message decoded by its contract, for printing. */
export interface DecodedMessage {
  stream: string;
  seq: number;
  subject: string;
  type?: string;
  id?: string;
  time?: string;
  headers: Record<string, string>;
  event?: JsonValue;
  /** Why the payload could not be decoded, when it could not. */
  error?: string;
  /** A scheduled event still waiting in the stream: when it is delivered to its subject (`Nats-Schedule`). */
  scheduledFor?: string;
  /** The event's lifetime in the stream (`Nats-TTL`, or `Nats-Schedule-TTL` of a waiting schedule). */
  ttl?: string;
  /** Decoded by this registry version's contracts (its type is not in the command's catalog). */
  registryVersion?: number;
}

export function decodeStored(
  catalog: Catalog,
  m: {
    subject: string;
    data: Uint8Array;
    seq: number;
    headers?: { keys(): string[]; get(k: string): string } | undefined;
  },
  stream: string,
): DecodedMessage {
  const headers: Record<string, string> = {};
  for (const k of m.headers?.keys() ?? []) headers[k] = m.headers!.get(k);
  // A dead letter decodes by its original subject, a waiting schedule by the subject it targets.
  const original = headers["Jetkit-Dlq-Subject"] ?? headers["Nats-Schedule-Target"] ?? m.subject;
  const spec = catalog.findBySubject(original);
  const out: DecodedMessage = { stream, seq: m.seq, subject: m.subject, headers };
  if (headers["ce-type"]) out.type = headers["ce-type"];
  if (headers["ce-id"]) out.id = headers["ce-id"];
  if (headers["ce-time"]) out.time = headers["ce-time"];
  const at = /^@at (.+)$/.exec(headers["Nats-Schedule"] ?? "")?.[1];
  if (at) out.scheduledFor = at;
  const ttl = headers["Nats-TTL"] ?? headers["Nats-Schedule-TTL"];
  if (ttl) out.ttl = ttl;
  if (!spec) {
    out.error = `no contract for subject ${original}`;
    return out;
  }
  try {
    out.event = toJson(spec.schema, catalog.decode(spec, m.data), { registry: catalog.registry });
  } catch (err) {
    out.error = (err as Error).message;
  }
  return out;
}

/** What looks up a type the catalog does not know: the registry's resolver. */
export interface TypeResolver {
  resolve(dataschema: string): Promise<{ version: number; catalog: Catalog } | undefined>;
}

/**
 * {@link decodeStored}, and for an event of a type the catalog does not know that names its
 * registry version (`ce-dataschema`, WIRE.md §4.4), decoded by that version's contracts (one fetch
 * per version). Why the registry could not help is added to the error.
 */
export async function decodeWithRegistry(
  catalog: Catalog,
  registry: TypeResolver | undefined,
  m: Parameters<typeof decodeStored>[1],
  stream: string,
): Promise<DecodedMessage> {
  const d = decodeStored(catalog, m, stream);
  const dataschema = d.headers["ce-dataschema"];
  if (!d.error || !registry || !dataschema) return d;
  try {
    const found = await registry.resolve(decodeURIComponent(dataschema));
    if (!found) return d;
    return { ...decodeStored(found.catalog, m, stream), registryVersion: found.version };
  } catch (err) {
    return { ...d, error: `${d.error}; registry: ${(err as Error).message}` };
  }
}
