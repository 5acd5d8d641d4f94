// Header values per the CloudEvents NATS binding 1.0.3-wip §3.1.3.2 (contracts/WIRE.md §4.1).

const HEX = "0123456789ABCDEF";
/** `…` percent-encoded: what ends a value that was cut. */
const CUT_MARK = "%E2%80%A6";

/**
 * True for a character the binding leaves as is: printable US-ASCII (U+0021-U+007E) other than
 * `"` and `%`.
 */
function plain(c: number): boolean {
  return c >= 0x21 && c <= 0x7e && c !== 0x22 && c !== 0x25;
}

/** The `%XY` escapes of the UTF-8 bytes of code point `cp` (a lone surrogate as U+FFFD). */
function escapes(cp: number): string {
  const b = (x: number) => `%${HEX[x >> 4]}${HEX[x & 15]}`;
  if (cp < 0x80) return b(cp);
  if (cp < 0x800) return b(0xc0 | (cp >> 6)) + b(0x80 | (cp & 63));
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x10000) return b(0xe0 | (cp >> 12)) + b(0x80 | ((cp >> 6) & 63)) + b(0x80 | (cp & 63));
  return (
    b(0xf0 | (cp >> 18)) + b(0x80 | ((cp >> 12) & 63)) + b(0x80 | ((cp >> 6) & 63)) + b(0x80 | (cp & 63))
  );
}

/**
 * `value` percent-encoded as the binding says: space, `"`, `%` and every character outside
 * U+0021-U+007E become the `%XY` escapes (upper-case hex) of their UTF-8 bytes, a surrogate pair
 * counting as one character. The result is printable ASCII. When it would be longer than `max`
 * characters it is cut at a character boundary (never inside an escape) and ends with `…`
 * (`%E2%80%A6`), the whole at most `max` characters. Values needing no escape and no cut (ids,
 * types, times) are returned as they are, without a copy.
 */
export function percentEncode(value: string, max: number): string {
  let i = 0;
  while (i < value.length && plain(value.charCodeAt(i))) i++;
  if (i === value.length && i <= max) return value;
  if (i > max) return value.slice(0, max - CUT_MARK.length) + CUT_MARK;
  let out = value.slice(0, i);
  /** Length of `out` at the last character boundary that leaves room for the cut mark. */
  let fits = Math.min(i, max - CUT_MARK.length);
  for (; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (plain(c)) out += value[i];
    else {
      let cp = c;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < value.length) {
        const d = value.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        }
      }
      out += escapes(cp);
    }
    if (out.length <= max - CUT_MARK.length) fits = out.length;
    else if (out.length > max) return out.slice(0, fits) + CUT_MARK;
  }
  return out;
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** Why a header value could not be decoded (the caller names the header). */
export class HeaderDecodeError extends Error {
  override name = "HeaderDecodeError";
}

/**
 * A received header value decoded as the binding says: a double-quoted value is unquoted first
 * (backslash escapes processed), then one round of percent-decoding (lower-case hex accepted).
 * Escapes that decode to bytes which are not valid UTF-8 (`%C0%A0`, an overlong space) throw a
 * {@link HeaderDecodeError}. A `%` not followed by two hex digits is kept as it is: senders that
 * predate §3.1.3.2 write a literal `%` unescaped. Values without `%` or a leading `"` (everything
 * jetkit writes for ids, types, times) are returned as they are.
 */
export function percentDecode(value: string): string {
  let v = value;
  if (v.length >= 2 && v.charCodeAt(0) === 0x22 && v.charCodeAt(v.length - 1) === 0x22) v = unquote(v);
  const first = v.indexOf("%");
  if (first === -1) return v;
  const bytes: number[] = [];
  const push = (s: string) => {
    for (const b of Buffer.from(s, "utf8")) bytes.push(b);
  };
  push(v.slice(0, first));
  for (let i = first; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x25 && i + 2 < v.length) {
      const hi = hexDigit(v.charCodeAt(i + 1));
      const lo = hexDigit(v.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes.push((hi << 4) | lo);
        i += 2;
        continue;
      }
    }
    if (c < 0x80) bytes.push(c);
    else {
      const cp = v.codePointAt(i)!;
      if (cp > 0xffff) i++;
      push(String.fromCodePoint(cp));
    }
  }
  try {
    return fatalUtf8.decode(Uint8Array.from(bytes));
  } catch {
    throw new HeaderDecodeError("its percent-escapes decode to bytes that are not valid UTF-8");
  }
}

/** RFC 7230 §3.2.6 quoted-string without its quotes, `\x` read as `x`. */
function unquote(v: string): string {
  let out = "";
  for (let i = 1; i < v.length - 1; i++) {
    const c = v[i]!;
    if (c === "\\" && i + 1 < v.length - 1) out += v[++i];
    else out += c;
  }
  return out;
}
