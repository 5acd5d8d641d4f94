import { createHash } from "node:crypto";

/**
 * A UUID (version 8, RFC 9562) derived from `parts`: the same input always gives the same id, so
 * an event emitted again after a redelivery carries the same ce-id / Nats-Msg-Id and the stream
 * drops the duplicate.
 */
export function derivedUuid(...parts: string[]): string {
  const b = createHash("sha256").update(parts.join("\u0000")).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
