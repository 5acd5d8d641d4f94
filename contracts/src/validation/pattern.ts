/**
 * Translates a `string.pattern` (RE2 syntax, as protovalidate evaluates it) into a JavaScript
 * RegExp when the pattern only uses constructs whose meaning is the same in both engines;
 * returns undefined otherwise, and the caller falls back to protovalidate for that message.
 *
 * Accepted: literals, escaped punctuation, `\d` `\w` `\D` `\W` (ASCII in both), character
 * classes of literals and ranges, `^` `$` (no multiline: start/end of text in both), groups
 * `(...)` `(?:...)`, `|`, and the quantifiers `* + ? {n} {n,} {n,m}` (lazy forms too: a test
 * does not depend on laziness). `.` becomes `[^\n]` (RE2's dot; JavaScript's also skips
 * `\r`, U+2028, U+2029). The `u` flag makes classes and counts work on code points, as RE2 does.
 * Rejected (fallback): `\s` `\b` `\p{..}`, `\A` `\z`, flags `(?i)`, named groups, backreferences,
 * POSIX classes `[[:alpha:]]`, anything else.
 */
export function translatePattern(src: string): RegExp | undefined {
  let out = "";
  let i = 0;
  const n = src.length;
  const simpleEscape = /[\\^$.|?*+()[\]{}\-/]/;
  while (i < n) {
    const c = src[i]!;
    if (c === "\\") {
      const d = src[i + 1];
      if (d === undefined) return undefined;
      if ("dDwW".includes(d) || simpleEscape.test(d)) {
        out += `\\${d}`;
        i += 2;
        continue;
      }
      return undefined;
    }
    if (c === "[") {
      const end = classEnd(src, i);
      if (end < 0) return undefined;
      out += src.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    if (c === "(") {
      if (src[i + 1] === "?") {
        if (src[i + 2] !== ":") return undefined;
        out += "(?:";
        i += 3;
        continue;
      }
      out += "(";
      i++;
      continue;
    }
    if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
      if (!m || Number(m[1]) > 1000 || Number(m[3] || 0) > 1000) return undefined; // RE2's repeat limit
      out += m[0];
      i += m[0].length;
      continue;
    }
    if (c === ".") {
      out += "[^\\n]";
      i++;
      continue;
    }
    if (c === "}" || c === "]") return undefined;
    if (/[A-Za-z0-9 _\-^$|*+?)@#%&=:;,'"<>!~`/]/.test(c)) {
      out += c === "/" ? "\\/" : c;
      i++;
      continue;
    }
    return undefined; // non-ASCII and other characters: keep it simple, let protovalidate decide
  }
  try {
    return new RegExp(out, "u");
  } catch {
    return undefined;
  }
}

/** Index of the `]` closing the class at `start`, or -1 if the class uses anything beyond literals and ranges. */
function classEnd(src: string, start: number): number {
  let i = start + 1;
  if (src[i] === "^") i++;
  let first = true;
  while (i < src.length) {
    const c = src[i]!;
    if (c === "]") return first ? -1 : i; // RE2 reads a leading "]" as a literal, JavaScript as an empty class
    if (c === "[") return -1; // POSIX classes and nesting
    if (c === "\\") {
      const d = src[i + 1];
      if (d === undefined || !/[\\\][\-^.dw]/.test(d)) return -1;
      i += 2;
    } else if (/[A-Za-z0-9 _\-.+*?$|(){}@#%&=:;,'"<>!~`/]/.test(c)) {
      i++;
    } else {
      return -1;
    }
    first = false;
  }
  return -1;
}
