import { EventHeaders, headerValue, JetkitError } from "@jetkit/contracts";
import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { ProducerErrorCodes } from "./errors.js";

/** Lower-cased names the producer writes itself; callers' extra headers must not replace them. */
const RESERVED = new Set(
  [...Object.values(EventHeaders), "Nats-Expected-Stream", "Nats-Expected-Last-Sequence"].map((h) =>
    h.toLowerCase(),
  ),
);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;

/** NATS headers in the given order (the wire order of contracts/WIRE.md). */
export function toMsgHdrs(list: readonly (readonly [string, string])[]): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of list) h.append(k, v);
  return h;
}

/** Bytes the header block takes on the wire (`NATS/1.0\r\n`, `k: v\r\n`..., `\r\n`). */
export function headerBytes(list: readonly (readonly [string, string])[]): number {
  let n = 12;
  for (const [k, v] of list) n += Buffer.byteLength(k) + Buffer.byteLength(v) + 4;
  return n;
}

/** Checks callers' extra headers: valid names, none that would override a wire header. */
export function checkExtraHeaders(extra: Record<string, string>): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(extra)) {
    if (!HEADER_NAME.test(k) || RESERVED.has(k.toLowerCase()) || k.toLowerCase().startsWith("nats-")) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `header "${k}" cannot be set by the caller: it is not a valid header name or it is written by jetkit itself (contracts/WIRE.md). Pass ids through msgId/correlationId/causationId/key instead.`,
        { details: { header: k } },
      );
    }
    out.push([k, headerValue(v)]);
  }
  return out;
}
