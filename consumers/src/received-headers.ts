import { Buffer } from "node:buffer";
import {
  decodeHeaderValue,
  EventHeaders,
  type EventHeaderValues,
  isStructured,
  type JetkitError,
  readStructuredEvent,
} from "@jetkit/contracts";
import type { JsMsg } from "@nats-io/jetstream";

/** First line of a NATS header block without a status code. */
const HEADER_LINE = "NATS/1.0";
/** The decoder nats-core uses for header blocks (UTF-8, replacement characters, BOM stripped). */
const utf8 = new TextDecoder();

/** The parts of nats-core's `MsgImpl` (3.4.0, pinned) that hold the undecoded header block. */
interface RawMsg {
  _rdata?: unknown;
  _msg?: { hdr?: unknown };
}

/**
 * The headers the SDK reads, by slot: the event headers of contracts/WIRE.md §4,
 * `Jetkit-Replay-Of` and `content-type` (structured mode). Lower-case: names match
 * case-insensitively, as the CloudEvents NATS binding says (NATS header names are
 * case-insensitive by its design).
 */
const SLOT_NAMES = [
  EventHeaders.ID,
  EventHeaders.SPEC_VERSION,
  EventHeaders.TYPE,
  EventHeaders.SOURCE,
  EventHeaders.TIME,
  EventHeaders.DATA_CONTENT_TYPE,
  EventHeaders.PARTITION_KEY,
  EventHeaders.CORRELATION_ID,
  EventHeaders.CAUSATION_ID,
  EventHeaders.TRACEPARENT,
  EventHeaders.TRACESTATE,
  EventHeaders.MSG_ID,
  EventHeaders.REPLAY_OF,
  EventHeaders.CE_TRACEPARENT,
  EventHeaders.CE_TRACESTATE,
  EventHeaders.CONTENT_TYPE,
  EventHeaders.DATA_SCHEMA,
].map((n) => n.toLowerCase());
const SLOT_OF = new Map(SLOT_NAMES.map((n, slot) => [n, slot]));
/** Slots whose values are CloudEvents attributes, percent-encoded on the wire (binding §3.1.3.2). */
const ENCODED = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 16]);
const CONTENT_TYPE_SLOT = 15;
const DATA_SCHEMA_SLOT = 16;

/** Slot of header `name` (any case), -1 for a header the SDK does not read. */
function slotOf(name: string): number {
  return SLOT_OF.get(name) ?? SLOT_OF.get(name.toLowerCase()) ?? -1;
}

/** Per name length, the slots whose names have that length, with the names' bytes. */
const SLOTS_BY_LENGTH: { slot: number; bytes: Uint8Array }[][] = [];
for (const [slot, name] of SLOT_NAMES.entries()) {
  const sameLength = SLOTS_BY_LENGTH[name.length] ?? [];
  sameLength.push({ slot, bytes: new TextEncoder().encode(name) });
  SLOTS_BY_LENGTH[name.length] = sameLength;
}

/**
 * Slot of the name in `data[start, end)` (ASCII bytes, any case), -1 for a header the SDK does
 * not read. The names are lower-case letters and `-`: setting bit 0x20 lower-cases a letter.
 */
function slotAt(data: Uint8Array, start: number, end: number): number {
  const candidates = SLOTS_BY_LENGTH[end - start];
  if (!candidates) return -1;
  next: for (const { slot, bytes } of candidates) {
    for (let i = 0; i < bytes.length; i++) {
      const c = data[start + i]!;
      const t = bytes[i]!;
      if (c !== t && (t < 0x61 || (c | 0x20) !== t)) continue next;
    }
    return slot;
  }
  return -1;
}

/**
 * The jetkit headers of one received message: the first value of each, as `MsgHdrs.get` gives it
 * (an empty value included), undefined when absent. One field per header, so the SDK reads them
 * without a lookup by name, and `checkEventHeaders` takes the object as it is.
 */
export class ReceivedHeaders implements EventHeaderValues {
  id: string | undefined = undefined;
  specVersion: string | undefined = undefined;
  type: string | undefined = undefined;
  source: string | undefined = undefined;
  time: string | undefined = undefined;
  dataContentType: string | undefined = undefined;
  partitionKey: string | undefined = undefined;
  correlationId: string | undefined = undefined;
  causationId: string | undefined = undefined;
  traceparent: string | undefined = undefined;
  tracestate: string | undefined = undefined;
  msgId: string | undefined = undefined;
  replayOf: string | undefined = undefined;
  ceTraceparent: string | undefined = undefined;
  ceTracestate: string | undefined = undefined;
  /** `content-type`: names the event format of a structured-mode message. */
  contentType: string | undefined = undefined;
  /** `ce-dataschema`: the registry version the producer encoded with. */
  dataschema: string | undefined = undefined;
  /** Why the message cannot be read as an event (a bad escape, a broken structured event). */
  malformed: JetkitError | undefined = undefined;
  /** The event data of a structured-mode message (the protobuf payload); undefined in binary mode. */
  body: Uint8Array | undefined = undefined;

  /** First value of header `name`; undefined when absent or not one of the headers the SDK reads. */
  get(name: string): string | undefined {
    return this.#at(slotOf(name));
  }

  #at(slot: number): string | undefined {
    switch (slot) {
      case 0:
        return this.id;
      case 1:
        return this.specVersion;
      case 2:
        return this.type;
      case 3:
        return this.source;
      case 4:
        return this.time;
      case 5:
        return this.dataContentType;
      case 6:
        return this.partitionKey;
      case 7:
        return this.correlationId;
      case 8:
        return this.causationId;
      case 9:
        return this.traceparent;
      case 10:
        return this.tracestate;
      case 11:
        return this.msgId;
      case 12:
        return this.replayOf;
      case 13:
        return this.ceTraceparent;
      case 14:
        return this.ceTracestate;
      case 15:
        return this.contentType;
      case DATA_SCHEMA_SLOT:
        return this.dataschema;
      default:
        return undefined;
    }
  }

  /** Whether slot `slot` holds no value yet (a later value of a repeated header is ignored). */
  isOpen(slot: number): boolean {
    return slot >= 0 && this.#at(slot) === undefined;
  }

  /**
   * Sets the value of slot `slot` (see {@link isOpen}) as read from a header: a CloudEvents
   * attribute is percent-decoded (only values with a `%` or a leading `"` need it).
   */
  set(slot: number, raw: string): void {
    let value = raw;
    if (ENCODED.has(slot) && (raw.includes("%") || raw.charCodeAt(0) === 0x22)) {
      try {
        value = decodeHeaderValue(SLOT_NAMES[slot]!, raw);
      } catch (err) {
        this.malformed ??= err as JetkitError;
      }
    }
    switch (slot) {
      case 0:
        this.id = value;
        break;
      case 1:
        this.specVersion = value;
        break;
      case 2:
        this.type = value;
        break;
      case 3:
        this.source = value;
        break;
      case 4:
        this.time = value;
        break;
      case 5:
        this.dataContentType = value;
        break;
      case 6:
        this.partitionKey = value;
        break;
      case 7:
        this.correlationId = value;
        break;
      case 8:
        this.causationId = value;
        break;
      case 9:
        this.traceparent = value;
        break;
      case 10:
        this.tracestate = value;
        break;
      case 11:
        this.msgId = value;
        break;
      case 12:
        this.replayOf = value;
        break;
      case 13:
        this.ceTraceparent = value;
        break;
      case 14:
        this.ceTracestate = value;
        break;
      case CONTENT_TYPE_SLOT:
        this.contentType = value;
        break;
      case DATA_SCHEMA_SLOT:
        this.dataschema = value;
        break;
    }
  }
}

/** The headers of a message without any (frozen: shared by every such message). */
const NONE = new ReceivedHeaders();
Object.freeze(NONE);

/**
 * The jetkit headers of a received message, read in one pass.
 *
 * nats-core's `msg.headers` decodes the whole block into a `MsgHdrsImpl` whose `append` and `get`
 * list and filter every key on each call (about a quarter of the SDK's per-message work, and a
 * dozen `get`s follow). This reads the same block once, with nats-core's rules for a status-less
 * block: lines split at CRLF, name up to the first `:`, value trimmed, names matched exactly (the
 * default `get`), the first value of a repeated name. A block it would not read exactly the same
 * way (a status line, a name nats-core refuses, a value with a lone CR or LF) and a message whose
 * shape it does not know go through `msg.headers` itself, so nothing is read differently. Dead
 * letters still copy every original header from `msg.headers`.
 */
export function receivedHeaders(m: JsMsg): ReceivedHeaders {
  return contentMode(headerBlock(m), m.data);
}

function headerBlock(m: JsMsg): ReceivedHeaders {
  const raw = (m as unknown as { msg?: RawMsg }).msg;
  const data = raw?._rdata;
  const hdr = raw?._msg?.hdr;
  if (data instanceof Uint8Array && typeof hdr === "number" && hdr <= data.length) {
    if (hdr < 0) return NONE;
    const fast = parseHeaderBlock(data, hdr);
    if (fast) return fast;
  }
  return fromMsgHdrs(m);
}

/**
 * The headers of a binary-mode message as they are (`content-type` standing in for an absent
 * `ce-datacontenttype`, as sdk-go reads it); for a structured-mode message (contracts/WIRE.md
 * §4.3), the event's attributes and data read from the body, the transport headers kept.
 */
export function contentMode(h: ReceivedHeaders, data: Uint8Array): ReceivedHeaders {
  if (!isStructured(h.contentType, h.specVersion, data)) {
    if (h.contentType !== undefined && h.dataContentType === undefined) h.dataContentType = h.contentType;
    return h;
  }
  const out = new ReceivedHeaders();
  out.contentType = h.contentType;
  out.msgId = h.msgId;
  out.replayOf = h.replayOf;
  try {
    const e = readStructuredEvent(h.contentType, data, h);
    Object.assign(out, e.attributes);
    out.body = e.data;
  } catch (err) {
    out.malformed = err as JetkitError;
  }
  return out;
}

/** Through nats-core's own decoder. */
function fromMsgHdrs(m: JsMsg): ReceivedHeaders {
  const h = m.headers;
  if (!h) return NONE;
  const out = new ReceivedHeaders();
  for (const [k, v] of h) {
    const slot = slotOf(k);
    if (out.isOpen(slot) && v[0] !== undefined) out.set(slot, v[0]);
  }
  return out;
}

const CR = 13;
const LF = 10;
const COLON = 58;
const HEADER_LINE_BYTES = new TextEncoder().encode(HEADER_LINE);

/** The header block `data[0, end)`, or undefined when nats-core's decoder must read it. */
export function parseHeaderBlock(data: Uint8Array, end: number): ReceivedHeaders | undefined {
  return parseAscii(data, end) ?? parseText(utf8.decode(data.subarray(0, end)));
}

/**
 * The common case, a well-formed ASCII block (jetkit writes ASCII names and values, but a
 * partition key may be any text), read from its bytes with the rules of {@link parseText}: no
 * string per line or name, one slice per value the SDK reads. Undefined for any
 * other block (a byte above 0x7f, a status line, a lone CR or LF, a name nats-core refuses): the
 * text pass reads it and decides. For an ASCII block both passes give the same answer (latin1
 * and UTF-8 agree). Each line is two tight loops, name then value, one or two tests per byte.
 */
function parseAscii(data: Uint8Array, end: number): ReceivedHeaders | undefined {
  const head = HEADER_LINE_BYTES.length;
  if (end < head) return undefined;
  for (let i = 0; i < head; i++) if (data[i] !== HEADER_LINE_BYTES[i]) return undefined;
  const out = new ReceivedHeaders();
  if (end === head) return out;
  if (end < head + 2 || data[head] !== CR || data[head + 1] !== LF) return undefined;
  /**
   * The block as text, made on the first value read (latin1: one char per ASCII byte). Values
   * are slices of it: one string copy per block costs less than one per value.
   */
  let text: string | undefined;
  let pos = head + 2;
  while (pos < end) {
    // The name: up to the first colon, or the end of a line without one.
    let i = pos;
    let c = 0;
    /** A byte nats-core refuses in a name (it only matters when the line has a colon). */
    let badName = false;
    for (; i < end; i++) {
      c = data[i]!;
      if (c === COLON || c === CR) break;
      if (c > 0x7e || c < 0x21) {
        if (c > 0x7f || c === LF) return undefined;
        badName = true;
      }
    }
    let slot = -1;
    if (i < end && c === COLON) {
      // nats-core validates every name, including headers the SDK does not read.
      if (badName) return undefined;
      slot = slotAt(data, pos, i);
      const colon = i;
      for (i = colon + 1; i < end; i++) {
        c = data[i]!;
        if (c === CR) break;
        if (c > 0x7f || c === LF) return undefined;
      }
      if (slot >= 0 && out.isOpen(slot)) {
        // String#trim's whitespace within a line of ASCII bytes: tab, vertical tab, form feed, space.
        let a = colon + 1;
        let b = i;
        while (a < b && isTrimmed(data[a]!)) a++;
        while (b > a && isTrimmed(data[b - 1]!)) b--;
        text ??= latin1(data, end);
        out.set(slot, text.slice(a, b));
      }
    }
    // i is at the line's CR (which must start a CRLF) or at the end of the block.
    if (i < end) {
      if (i + 1 >= end || data[i + 1] !== LF) return undefined;
      pos = i + 2;
    } else pos = end;
  }
  return out;
}

function isTrimmed(c: number): boolean {
  return c === 32 || c === 9 || c === 11 || c === 12;
}

/** `data[0, end)` of ASCII bytes as a string. */
function latin1(data: Uint8Array, end: number): string {
  return Buffer.isBuffer(data)
    ? data.toString("latin1", 0, end)
    : Buffer.from(data.buffer, data.byteOffset, end).toString("latin1");
}

/** A header block decoded as UTF-8 text, read with nats-core's rules. */
function parseText(s: string): ReceivedHeaders | undefined {
  let eol = s.indexOf("\r\n");
  if ((eol === -1 ? s : s.slice(0, eol)) !== HEADER_LINE) return undefined;
  const out = new ReceivedHeaders();
  if (eol === -1) return out;
  let pos = eol + 2;
  while (pos < s.length) {
    eol = s.indexOf("\r\n", pos);
    if (eol === -1) eol = s.length;
    // A lone CR or LF inside a line: nats-core may refuse its name or value; let it decide.
    const cr = s.indexOf("\r", pos);
    const lf = s.indexOf("\n", pos);
    if ((cr !== -1 && cr < eol) || (lf !== -1 && lf < eol)) return undefined;
    const colon = s.indexOf(":", pos);
    if (colon !== -1 && colon < eol) {
      const name = s.slice(pos, colon);
      // nats-core validates every name and value, including headers the SDK does not read.
      if (!validName(name)) return undefined;
      const slot = slotOf(name);
      if (out.isOpen(slot)) out.set(slot, s.slice(colon + 1, eol).trim());
    }
    pos = eol + 2;
  }
  return out;
}

/** nats-core accepts header names of printable ASCII without `:` (and throws on others). */
function validName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 33 || c > 126 || c === 58) return false;
  }
  return true;
}
