/** `<domain>.<entity>.<event>`: three lower-case tokens, letters, digits and `_`, no wildcards. */
export const EVENT_SUBJECT = /^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/;

/** True when `subject` is a valid concrete event subject. */
export function isEventSubject(subject: string): boolean {
  return EVENT_SUBJECT.test(subject);
}

/** True when `subject` has a NATS wildcard token (`*` or `>`). */
export function hasWildcard(subject: string): boolean {
  return subject.split(".").some((t) => t === "*" || t === ">");
}

/**
 * True when the concrete `subject` matches `pattern` with NATS semantics: `*` matches exactly one
 * token, `>` (last token only) matches one or more tokens.
 */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return i === p.length - 1 && s.length > i;
    if (i >= s.length) return false;
    if (token !== "*" && token !== s[i]) return false;
  }
  return p.length === s.length;
}

/**
 * True when two patterns can match a common subject (NATS refuses streams whose subjects overlap).
 */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split(".");
  const y = b.split(".");
  for (let i = 0; ; i++) {
    const tx = x[i];
    const ty = y[i];
    if (tx === ">" || ty === ">") return tx !== undefined && ty !== undefined;
    if (tx === undefined || ty === undefined) return tx === ty;
    if (tx !== "*" && ty !== "*" && tx !== ty) return false;
  }
}

/** `dlq.<original subject>`: where a dead letter of `subject` is stored. */
export function deadLetterSubject(subject: string): string {
  return `dlq.${subject}`;
}
