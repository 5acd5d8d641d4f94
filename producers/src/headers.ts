import {
  type EventHeaderInput,
  EventHeaders,
  headerValue,
  JetkitError,
  structuredEventBody,
  structuredHeaders,
} from "@jetkit/contracts";
import { type Match, MsgHdrsImpl } from "@nats-io/nats-core";
import { ProducerErrorCodes } from "./errors.js";

/** Lower-cased names the producer writes itself; callers' extra headers must not replace them. */
const RESERVED = new Set(
  [...Object.values(EventHeaders), "Nats-Expected-Stream", "Nats-Expected-Last-Sequence"].map((h) =>
    h.toLowerCase(),
  ),
);
/** Whether jetkit writes header `name` itself (any case): a caller or a propagator must not. */
export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return RESERVED.has(lower) || lower.startsWith("nats-");
}

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;

const CR_LF = /[\r\n]/;

/**
 * A header map whose wire block is encoded once. nats.js calls `encode()` on every send and
 * builds the block from the map each time; an event's block is built by {@link toMsgHdrs} in
 * the pass that fills the map, so its size is known exactly before sending and a retry re-sends
 * the same bytes. Changing the map afterwards (expectation headers) drops the cached block.
 */
export class EncodedHeaders extends MsgHdrsImpl {
  #bytes: Uint8Array | undefined;

  /** Bytes of the header block on the wire (`NATS/1.0`, the `k: v` lines, a blank line). */
  get wireBytes(): number {
    return this.encode().length;
  }

  override encode(): Uint8Array {
    this.#bytes ??= super.encode();
    return this.#bytes;
  }

  override set(k: string, v: string, match?: Match): void {
    this.#bytes = undefined;
    super.set(k, v, match);
  }

  override append(k: string, v: string, match?: Match): void {
    this.#bytes = undefined;
    super.append(k, v, match);
  }

  override delete(k: string, match?: Match): void {
    this.#bytes = undefined;
    super.delete(k, match);
  }

  /** @internal the block of the current map, written by {@link toMsgHdrs}. */
  seal(bytes: Uint8Array): this {
    this.#bytes = bytes;
    return this;
  }
}

/**
 * NATS headers in the given order (the wire order of contracts/WIRE.md). The names are
 * jetkit's own or checked by {@link checkExtraHeaders}, so they are put in the header map
 * directly: `append()` canonicalises and searches every name again, a third of the cost of an
 * event's headers. Values get what `append()` does to them (CR/LF refused, trimmed). The wire
 * block is written in the same pass: byte for byte what nats.js's encoding of the map gives.
 */
export function toMsgHdrs(list: readonly (readonly [string, string])[]): EncodedHeaders {
  const h = new EncodedHeaders();
  const map = h.headers;
  let block: string | undefined = "NATS/1.0\r\n";
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
    if (values) {
      // a repeated name: nats.js groups a name's values, so let it lay the block out
      values.push(value);
      block = undefined;
    } else {
      map.set(k, [value]);
      if (block !== undefined) block += `${k}: ${value}\r\n`;
    }
  }
  return block === undefined ? h : h.seal(Buffer.from(`${block}\r\n`));
}

/** Checks callers' extra headers: valid names, none that would override a wire header. */
export function checkExtraHeaders(extra: Record<string, string>): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(extra)) {
    if (!HEADER_NAME.test(k) || isReservedHeader(k)) {
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

/**
 * The headers after jetkit's own: the registered propagator's (`propagated`), then the caller's
 * extra headers; a caller's header replaces the propagator's of the same name (any case).
 */
export function withPropagated(
  propagated: readonly [string, string][] | undefined,
  extra: [string, string][],
): [string, string][] {
  if (!propagated) return extra;
  if (extra.length === 0) return [...propagated];
  const callers = new Set(extra.map(([k]) => k.toLowerCase()));
  return [...propagated.filter(([k]) => !callers.has(k.toLowerCase())), ...extra];
}

/**
 * The structured-mode message (contracts/WIRE.md §4.3) of an event whose binary-mode headers are
 * `binary`: the JSON event format with the payload as `data_base64`, and the headers that are no
 * CloudEvents attribute (`content-type` first, then W3C trace context, propagated and extra
 * headers, `Nats-Msg-Id`, TTL/schedule headers) in their order.
 */
export function structuredMessage(
  event: EventHeaderInput,
  binary: readonly (readonly [string, string])[],
  payload: Uint8Array,
): { headers: [string, string][]; body: Uint8Array } {
  const time = typeof event.time === "string" ? event.time : event.time.toISOString();
  return { headers: structuredHeaders(binary), body: structuredEventBody({ ...event, time }, payload) };
}

let lastMs = Number.NaN;
let lastIso = "";

/**
 * `new Date().toISOString()` for ce-time, formatted once per millisecond: a busy producer
 * publishes many events within one, and formatting a date costs as much as the rest of the
 * header block.
 */
export function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}
