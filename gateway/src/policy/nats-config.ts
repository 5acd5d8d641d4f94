import { type Catalog, JetkitError, subjectsOverlap } from "@jetkit/contracts";
import { PolicyErrorCodes } from "../errors.js";
import { subscribeAllows } from "./evaluate.js";
import { isPrincipalGlob, patternCovers, principalMatches } from "./patterns.js";
import type { Policy } from "./policy.js";

/** Options of {@link natsAuthorization}. */
export interface NatsConfigOptions {
  /**
   * Publish allows are expanded to the catalog subjects they match, so a direct NATS client can
   * publish exactly what the gateway would accept (concrete catalog subjects); the catalog's
   * streams say where consumers live.
   */
  catalog: Catalog;
  /**
   * Principals to map besides the exact ones of the bindings: nats-server maps a certificate to a
   * user by exact name, so principals only reached by a glob binding must be listed here.
   */
  principals?: readonly string[];
  /**
   * Durable consumer names each principal may create, read (pull `MSG.NEXT`), ack and delete
   * directly, on every stream it may subscribe to. NATS permissions match whole tokens, so
   * durables cannot be granted by a name prefix: they are listed. Default: none.
   */
  durables?: Readonly<Record<string, readonly string[]>>;
  /** The consumers SDK's idempotency KV bucket (its keys are prefixed with the durable name). Default: `jetkit-idempotency`. */
  idempotencyBucket?: string;
  /** Also allow subscribing to `_INBOX.>` so request/reply (JetStream publish acks) works. Default: true. */
  inbox?: boolean;
  /** When set, emit a `tls {}` block with `verify_and_map: true` using these files. */
  tls?: { certFile: string; keyFile: string; caFile: string; timeoutSeconds?: number };
}

/** The permissions of one principal, as nats-server wants them. */
export interface NatsUserPermissions {
  readonly user: string;
  readonly publish: { allow: string[]; deny: string[] };
  readonly subscribe: { allow: string[]; deny: string[] };
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

function refuse(message: string): never {
  throw new JetkitError(PolicyErrorCodes.NATS_MISMATCH, message);
}

/**
 * The implicit subscribe denies that keep nats-server's matching equal to the gateway's: an
 * allow `a.*` also lets nats-server accept a subscription to `a.>` (its `*` matches the literal
 * `>` token), which would deliver `a.b.c`; the deny `a.*.>` filters those deliveries, as the
 * gateway does. When another allow overlaps `a.*.>` without covering it, no deny can express the
 * difference and the policy is refused.
 */
function implicitDenies(user: string, allows: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of allows) {
    if (!a.endsWith("*")) continue;
    const deeper = `${a}.>`;
    const others = allows.filter((b) => b !== a && subjectsOverlap(b, deeper));
    if (others.some((b) => patternCovers(b, deeper))) continue;
    const partial = others[0];
    if (partial !== undefined) {
      refuse(
        `${user}: the subscribe allows "${a}" and "${partial}" cannot be expressed for nats-server: its "*" also matches a subscription to "${a.slice(0, -1)}>", and the deny "${deeper}" that stops those deliveries would also hide part of "${partial}". Use "${a.slice(0, -1)}>" or list the subjects of "${a}" instead.`,
      );
    }
    out.push(deeper);
  }
  return out;
}

/**
 * Every pattern a catalog subject can be written as (each token kept or `*`, optionally cut
 * short by `>`): the consumer filters granted one by one where a deny partly covers an allow.
 */
function catalogPatterns(subjects: readonly string[]): string[] {
  const out = new Set<string>();
  for (const s of subjects) {
    const tokens = s.split(".");
    for (let mask = 0; mask < 1 << tokens.length; mask++) {
      const t = tokens.map((x, i) => (mask & (1 << i) ? "*" : x));
      out.add(t.join("."));
      for (let cut = 1; cut < t.length; cut++) out.add(`${t.slice(0, cut).join(".")}.>`);
    }
  }
  out.add(">");
  return [...out];
}

/** The effective NATS permissions of every mapped principal of `policy`. */
export function natsPermissions(policy: Policy, opts: NatsConfigOptions): NatsUserPermissions[] {
  const exact = policy.bindings.flatMap((b) => b.principals.filter((p) => !isPrincipalGlob(p)));
  const users = uniq([...exact, ...(opts.principals ?? [])]);
  return users.map((user) => permissionsOf(policy, user, opts));
}

/**
 * The NATS permissions of one principal (glob bindings included): what the static config lists
 * for it, and what the auth callout puts in its user JWT. Throws `JK_POLICY_NATS_MISMATCH`.
 */
export function permissionsOf(
  policy: Policy,
  user: string,
  opts: Omit<NatsConfigOptions, "principals" | "tls">,
): NatsUserPermissions {
  const bucket = opts.idempotencyBucket ?? "jetkit-idempotency";
  const events = opts.catalog.events.map((e) => e.subject);
  {
    const roles = policy.bindings
      .filter((b) => b.principals.some((p) => principalMatches(p, user)))
      .flatMap((b) => b.roles.map((r) => policy.roles.get(r)!));
    const denies = policy.deny.filter((d) => d.principals.some((p) => principalMatches(p, user)));
    const pubDeny = denies.flatMap((d) => d.publish);
    const subDeny = denies.flatMap((d) => d.subscribe);
    const pubPatterns = roles.flatMap((r) => r.publish);
    const pubAllow = events.filter((s) => pubPatterns.some((p) => patternCovers(p, s)));
    const subAllow = subscribeAllows(policy, user);
    const implicit = implicitDenies(user, subAllow);

    // Direct JetStream consumers: the filter is part of the create subject
    // ($JS.API.CONSUMER.CREATE.<stream>.<durable>.<filter>, nats-server >= 2.10), so permissions
    // bound it. An allow a deny partly covers is granted only as its uncovered catalog subjects:
    // nats-server cannot filter a durable's deliveries.
    const durables = opts.durables?.[user] ?? [];
    const jsPub: string[] = [];
    const jsSub: string[] = [];
    const dlq: string[] = [];
    if (durables.length > 0) jsPub.push("$JS.API.INFO");
    for (const stream of opts.catalog.streams) {
      const filters = subAllow.flatMap((a) => {
        if (!stream.subjects.some((s) => patternCovers(s, a))) return [];
        if (!subDeny.some((d) => subjectsOverlap(d, a))) return [a];
        return catalogPatterns(events).filter(
          (f) => patternCovers(a, f) && !subDeny.some((d) => subjectsOverlap(d, f)),
        );
      });
      if (filters.length === 0 || durables.length === 0) continue;
      jsPub.push(`$JS.API.STREAM.INFO.${stream.name}`);
      for (const d of durables) {
        for (const f of filters) jsPub.push(`$JS.API.CONSUMER.CREATE.${stream.name}.${d}.${f}`);
        jsPub.push(
          `$JS.API.CONSUMER.INFO.${stream.name}.${d}`,
          `$JS.API.CONSUMER.MSG.NEXT.${stream.name}.${d}`,
          `$JS.API.CONSUMER.DELETE.${stream.name}.${d}`,
          `$JS.ACK.${stream.name}.${d}.>`,
          `$KV.${bucket}.${d}.>`,
          `$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.${d}.>`,
        );
        jsSub.push(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream.name}.${d}`);
      }
      dlq.push(...filters.map((f) => `dlq.${f}`));
    }
    if (durables.length > 0 && jsPub.length > 1) {
      jsPub.push(`$JS.API.STREAM.INFO.KV_${bucket}`, `$JS.API.STREAM.CREATE.KV_${bucket}`);
      // the consumers SDK checks at start that the dead-letter stream exists
      const dlqStream = opts.catalog.streams.find((st) =>
        dlq.some((d) => st.subjects.some((p) => patternCovers(p, d))),
      );
      if (dlqStream) jsPub.push(`$JS.API.STREAM.INFO.${dlqStream.name}`);
    }
    const sub = [...subAllow, ...jsSub];
    if (opts.inbox ?? true) sub.push("_INBOX.>");
    return {
      user,
      publish: { allow: uniq([...pubAllow, ...jsPub, ...dlq]), deny: uniq(pubDeny) },
      subscribe: { allow: uniq(sub), deny: uniq([...subDeny, ...implicit]) },
    };
  }
}

function q(s: string): string {
  return JSON.stringify(s);
}

function list(xs: string[]): string {
  return `[${xs.map(q).join(", ")}]`;
}

function block(p: { allow: string[]; deny: string[] }): string {
  // nats-server: an empty allow list means "everything"; deny all explicitly instead.
  if (p.allow.length === 0) return `{ deny: [">"] }`;
  return p.deny.length > 0
    ? `{ allow: ${list(p.allow)}, deny: ${list(p.deny)} }`
    : `{ allow: ${list(p.allow)} }`;
}

/**
 * The static nats-server configuration equivalent to `policy`, as far as a static config can be
 * (the README lists what it cannot prevent): an `authorization { users = [...] }` block whose users
 * are certificate principals (SPIFFE URI SAN or RFC 4514 DN, matched by `verify_and_map`), with
 * publish/subscribe allow/deny lists, JetStream rights for the listed durables; plus the `tls {}`
 * block when `opts.tls` is given. Certificates of unmapped principals cannot connect. Throws
 * `JK_POLICY_NATS_MISMATCH` for a policy nats-server would read differently.
 */
export function natsAuthorization(policy: Policy, opts: NatsConfigOptions): string {
  const lines: string[] = [`# generated by jetkit from ${policy.source}: do not edit, regenerate`];
  lines.push(
    "# static fallback: verify_and_map cannot apply the gateway's certificate rules (see the gateway README)",
  );
  if (opts.tls) {
    lines.push(
      "tls {",
      `  cert_file: ${q(opts.tls.certFile)}`,
      `  key_file: ${q(opts.tls.keyFile)}`,
      `  ca_file: ${q(opts.tls.caFile)}`,
      "  verify_and_map: true",
      `  timeout: ${opts.tls.timeoutSeconds ?? 2}`,
      "}",
    );
  }
  const globs = policy.bindings.flatMap((b) => b.principals.filter(isPrincipalGlob));
  if (globs.length > 0) {
    lines.push(
      `# glob bindings are mapped only for the principals listed to the generator: ${globs.join(", ")}`,
    );
  }
  lines.push("authorization {", "  users = [");
  for (const u of natsPermissions(policy, opts)) {
    lines.push(
      `    { user: ${q(u.user)}, permissions: {`,
      `        publish: ${block(u.publish)}`,
      `        subscribe: ${block(u.subscribe)}`,
      "    } }",
    );
  }
  lines.push("  ]", "}");
  return `${lines.join("\n")}\n`;
}
