import { EventHeaders, headerValue, JetkitError } from "@jetkit/contracts";
import { type MsgHdrs, MsgHdrsImpl } from "@nats-io/nats-core";
import { ProducerErrorCodes } from "./errors.js";

/** Lower-cased names the producer writes itself; callers' extra headers must not replace them. */
const RESERVED = new Set(
  [...Object.values(EventHeaders), "Nats-Expected-Stream", "Nats-Expected-Last-Sequence"].map((h) =>
    h.toLowerCase(),
  ),
);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;

const CR_LF = /[\r\n]/;

/**
 * NATS headers in the given order (the wire order of contracts/WIRE.md). The names are
 * jetkit's own or checked by {@link checkExtraHeaders}, so they are put in the header map
 * directly: `append()` canonicalises and searches every name again, a third of the cost of an
 * event's headers. Values get what `append()` does to them (CR/LF refused, trimmed).
 */
export function toMsgHdrs(list: readonly (readonly [string, string])[]): MsgHdrs {
  const h = new MsgHdrsImpl();
  const map = h.headers;
  for (const [k, v] of list) {
    if (CR_LF.test(v)) {
      throw new JetkitError(
        ProducerErrorCodes.OPTIONS,
        `header ${k} has a CR or LF in its value: remove it.`,
        {
          details: { header: k },
        },
      );
    }
    const value = v.trim();
    const values = map.get(k);
    if (values) values.push(value);
    else map.set(k, [value]);
  }
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
