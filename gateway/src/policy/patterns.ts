/** Subject patterns (NATS wildcards) and principal patterns (globs) as the policy uses them. */

const TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * Why `pattern` is not a valid NATS subject pattern of the policy (undefined when it is): tokens
 * are letters, digits, `_` or `-`, or a whole-token `*`; `>` only as the last token.
 */
export function patternProblem(pattern: string): string | undefined {
  if (typeof pattern !== "string" || pattern.length === 0)
    return "a subject pattern must be a non-empty string";
  if (pattern.length > 256) return "a subject pattern must be at most 256 characters";
  const tokens = pattern.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === ">") {
      if (i !== tokens.length - 1) return `">" may only be the last token (in "${pattern}")`;
      continue;
    }
    if (t === "*") continue;
    if (!TOKEN.test(t)) {
      return `token "${t}" of "${pattern}" must be letters, digits, "_" or "-", or a whole "*" / ">" wildcard`;
    }
  }
  return undefined;
}

/**
 * True when every subject that `inner` matches is also matched by `outer` (NATS semantics:
 * `*` one token, `>` one or more trailing tokens). A concrete subject is a pattern matching itself.
 */
export function patternCovers(outer: string, inner: string): boolean {
  const o = outer.split(".");
  const n = inner.split(".");
  for (let i = 0; ; i++) {
    const a = o[i];
    const t = n[i];
    if (a === undefined || t === undefined) return a === undefined && t === undefined;
    if (a === ">") return true;
    if (t === ">") return false;
    if (a !== "*" && (t === "*" || a !== t)) return false;
  }
}

/**
 * True when nats-server's permission check lets `permission` match the requested `subject`
 * (its sublist match, the subject's tokens taken literally): `*` matches any one token, a literal
 * `*` or `>` of a subscription included; `>` one or more trailing tokens; a literal only itself.
 * It differs from {@link patternCovers} in one case: `a.*` matches a subscription to `a.>`. The
 * gateway decides with this function, so both points decide alike (see the README's policy
 * semantics for what it means and how deliveries are then filtered).
 */
export function natsMatches(permission: string, subject: string): boolean {
  const o = permission.split(".");
  const n = subject.split(".");
  for (let i = 0; ; i++) {
    const a = o[i];
    const t = n[i];
    if (a === undefined || t === undefined) return a === undefined && t === undefined;
    if (a === ">") return true;
    if (a !== "*" && a !== t) return false;
  }
}

/** True when `pattern` is a principal glob (`*` within a path segment, `**` across segments). */
export function isPrincipalGlob(pattern: string): boolean {
  return pattern.includes("*");
}

const globCache = new Map<string, RegExp>();

/**
 * True when `principal` matches `pattern`: exact text, or a glob where `*` matches any characters
 * except `/`, `,`, `+` and `\` (one SPIFFE path segment, or one plain RFC 4514 attribute value) and
 * `**` matches anything (`spiffe://jetkit.dev/team-a/*`, `CN=*,O=jetkit`, `**`). A `*` never
 * matches an escaped character, so a CN of `x,O=jetkit` (principal `CN=x\,O=jetkit,...`) cannot
 * pass for `CN=*,O=jetkit`.
 */
export function principalMatches(pattern: string, principal: string): boolean {
  if (!isPrincipalGlob(pattern)) return pattern === principal;
  let re = globCache.get(pattern);
  if (!re) {
    const body = pattern
      .split("**")
      .map((part) =>
        part
          .split("*")
          .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
          .join("[^/,+\\\\]*"),
      )
      .join(".*");
    re = new RegExp(`^${body}$`, "s");
    globCache.set(pattern, re);
  }
  return re.test(principal);
}
