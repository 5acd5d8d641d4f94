import { type Catalog, hasWildcard, JetkitError, subjectsOverlap } from "@jetkit/contracts";
import { PolicyErrorCodes } from "../errors.js";
import { natsMatches, patternCovers, principalMatches } from "./patterns.js";
import type { Policy } from "./policy.js";

export type Action = "publish" | "subscribe";

/** The outcome of evaluating one request against the policy, with the rule that decided. */
export interface Decision {
  readonly allowed: boolean;
  /** The deciding rule: `deny[0].publish[1] "payment.>"`, `role writer publish[0] "order.*" via bindings[2]`, `default-deny`... */
  readonly rule: string;
  /** One sentence for people: why. */
  readonly reason: string;
  /** Deny patterns that overlap a subscribe pattern without covering it: matching events are filtered out on delivery. */
  readonly filtered?: readonly string[];
  /**
   * Set when the allowing pattern matched the subscription only as nats-server matches (`a.*`
   * allows subscribing to `a.>`): deliveries are limited to subjects one of these allows covers.
   */
  readonly within?: readonly string[];
}

/** Options of {@link explain}. */
export interface ExplainOptions {
  /** When given, a publish subject must be an event of the catalog. */
  catalog?: Catalog;
}

/**
 * Decides whether `principal` may `action` on `subject` and says which rule decided. Rules:
 * explicit denies first (deny beats allow), then the roles bound to the principal, else the
 * default deny. A publish subject must be concrete (and, with a catalog, an event subject). A
 * pattern matches as nats-server's permission check matches ({@link natsMatches}): a subscribe
 * pattern is allowed when an allow matches it and no deny matches it. A deny that only overlaps
 * it filters those events out on delivery, as nats-server does; an allow `a.*` that matched a
 * subscription to `a.>` limits its deliveries to `a.*` (the NATS config gets the same limit as
 * a deny `a.*.>`).
 */
export function explain(
  policy: Policy,
  principal: string,
  action: Action,
  subject: string,
  opts: ExplainOptions = {},
): Decision {
  if (action !== "publish" && action !== "subscribe") {
    throw new JetkitError(
      PolicyErrorCodes.BAD_ACTION,
      `action must be "publish" or "subscribe", not "${action}".`,
    );
  }
  if (action === "publish") {
    if (hasWildcard(subject)) {
      return {
        allowed: false,
        rule: "publish-concrete",
        reason: `publish subjects must be concrete; "${subject}" has a wildcard`,
      };
    }
    if (opts.catalog && !opts.catalog.findBySubject(subject)) {
      return {
        allowed: false,
        rule: "publish-catalog",
        reason: `"${subject}" is not an event subject of the catalog`,
      };
    }
  }
  const filtered: string[] = [];
  for (let i = 0; i < policy.deny.length; i++) {
    const d = policy.deny[i]!;
    if (!d.principals.some((p) => principalMatches(p, principal))) continue;
    const list = action === "publish" ? d.publish : d.subscribe;
    for (let j = 0; j < list.length; j++) {
      const pattern = list[j]!;
      if (natsMatches(pattern, subject)) {
        return {
          allowed: false,
          rule: `deny[${i}].${action}[${j}] "${pattern}"`,
          reason: d.reason ?? `explicitly denied by deny[${i}]`,
        };
      }
      if (action === "subscribe" && subjectsOverlap(pattern, subject)) filtered.push(pattern);
    }
  }
  for (let i = 0; i < policy.bindings.length; i++) {
    const b = policy.bindings[i]!;
    if (!b.principals.some((p) => principalMatches(p, principal))) continue;
    for (const roleName of b.roles) {
      const role = policy.roles.get(roleName)!;
      const list = action === "publish" ? role.publish : role.subscribe;
      for (let j = 0; j < list.length; j++) {
        const pattern = list[j]!;
        if (natsMatches(pattern, subject)) {
          const within = patternCovers(pattern, subject) ? undefined : subscribeAllows(policy, principal);
          return {
            allowed: true,
            rule: `role ${roleName} ${action}[${j}] "${pattern}" via bindings[${i}]`,
            reason: `role ${roleName} allows ${action} on "${pattern}"`,
            ...(filtered.length > 0 ? { filtered } : {}),
            ...(within ? { within } : {}),
          };
        }
      }
    }
  }
  return {
    allowed: false,
    rule: "default-deny",
    reason: `no role of ${principal} allows ${action} on "${subject}"`,
  };
}

/** Every subscribe allow of the roles bound to `principal`. */
export function subscribeAllows(policy: Policy, principal: string): string[] {
  return policy.bindings
    .filter((b) => b.principals.some((p) => principalMatches(p, principal)))
    .flatMap((b) => b.roles.flatMap((r) => policy.roles.get(r)!.subscribe));
}

/** True when a delivered event on `subject` must be withheld from a subscription (partial deny, or outside `within`). */
export function isFiltered(decision: Decision, subject: string): boolean {
  if (decision.filtered?.some((p) => patternCovers(p, subject))) return true;
  return decision.within ? !decision.within.some((p) => patternCovers(p, subject)) : false;
}
