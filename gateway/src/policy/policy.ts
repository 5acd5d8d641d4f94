import { JetkitError } from "@jetkit/contracts";
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { PolicyErrorCodes } from "../errors.js";
import { patternProblem } from "./patterns.js";

/** A role: what its holders may publish and subscribe to (NATS subject patterns). */
export interface Role {
  readonly name: string;
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  readonly description?: string;
}

/** Grants roles to principals (exact, or globs: `*` within a path segment, `**` anything). */
export interface Binding {
  readonly principals: readonly string[];
  readonly roles: readonly string[];
}

/** An explicit deny: beats every allow of every role. */
export interface DenyRule {
  readonly principals: readonly string[];
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  readonly reason?: string;
}

/** A parsed, valid policy. */
export interface Policy {
  readonly roles: ReadonlyMap<string, Role>;
  readonly bindings: readonly Binding[];
  readonly deny: readonly DenyRule[];
  /** Where it was loaded from (file path or `<inline>`). */
  readonly source: string;
}

type Path = (string | number)[];

class Problem extends Error {
  constructor(
    readonly path: Path,
    message: string,
  ) {
    super(message);
  }
}

function pathText(path: Path): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

function strings(value: unknown, path: Path, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === "string") return [value];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new Problem(path, `${what} must be a string or a list of strings`);
  }
  return value as string[];
}

function onlyKeys(obj: Record<string, unknown>, allowed: string[], path: Path): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new Problem([...path, k], `unknown key "${k}" (allowed here: ${allowed.join(", ")})`);
    }
  }
}

function patterns(value: unknown, path: Path, what: string): string[] {
  const list = strings(value, path, what);
  list.forEach((p, i) => {
    const problem = patternProblem(p);
    if (problem) throw new Problem([...path, i], problem);
  });
  return list;
}

function principalList(entry: Record<string, unknown>, path: Path): string[] {
  if (entry.principal !== undefined && entry.principals !== undefined) {
    throw new Problem(path, 'use either "principal" or "principals", not both');
  }
  const key = entry.principal !== undefined ? "principal" : "principals";
  const list = strings(entry[key], [...path, key], key);
  if (list.length === 0) throw new Problem(path, 'needs "principal" (or a non-empty "principals" list)');
  list.forEach((p, i) => {
    if (p.length === 0 || /[\u0000-\u001f]/.test(p)) {
      throw new Problem([...path, key, i], "a principal must be non-empty text without control characters");
    }
  });
  return list;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function build(data: unknown, source: string): Policy {
  if (!isObject(data)) throw new Problem([], "the policy must be a mapping with roles, bindings and deny");
  onlyKeys(data, ["version", "roles", "bindings", "deny"], []);
  if (data.version !== undefined && data.version !== 1) throw new Problem(["version"], "version must be 1");
  const roles = new Map<string, Role>();
  if (data.roles !== undefined) {
    if (!isObject(data.roles)) throw new Problem(["roles"], "roles must be a mapping of role name to role");
    for (const [name, r] of Object.entries(data.roles)) {
      const path = ["roles", name];
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
        throw new Problem(path, `role name "${name}" must be letters, digits, ".", "_" or "-"`);
      }
      if (!isObject(r)) throw new Problem(path, "a role must be a mapping with publish and/or subscribe");
      onlyKeys(r, ["publish", "subscribe", "description"], path);
      const role: Role = {
        name,
        publish: patterns(r.publish, [...path, "publish"], "publish"),
        subscribe: patterns(r.subscribe, [...path, "subscribe"], "subscribe"),
        ...(typeof r.description === "string" ? { description: r.description } : {}),
      };
      roles.set(name, role);
    }
  }
  const bindings: Binding[] = [];
  if (data.bindings !== undefined) {
    if (!Array.isArray(data.bindings)) throw new Problem(["bindings"], "bindings must be a list");
    data.bindings.forEach((b: unknown, i: number) => {
      const path: Path = ["bindings", i];
      if (!isObject(b)) throw new Problem(path, "a binding must be a mapping with principal(s) and roles");
      onlyKeys(b, ["principal", "principals", "roles"], path);
      const principals = principalList(b, path);
      const names = strings(b.roles, [...path, "roles"], "roles");
      if (names.length === 0) throw new Problem(path, 'a binding needs a non-empty "roles" list');
      names.forEach((n, j) => {
        if (!roles.has(n)) {
          throw new Problem(
            [...path, "roles", j],
            `role "${n}" is not defined (defined roles: ${[...roles.keys()].join(", ") || "none"})`,
          );
        }
      });
      bindings.push({ principals, roles: names });
    });
  }
  const deny: DenyRule[] = [];
  if (data.deny !== undefined) {
    if (!Array.isArray(data.deny)) throw new Problem(["deny"], "deny must be a list");
    data.deny.forEach((d: unknown, i: number) => {
      const path: Path = ["deny", i];
      if (!isObject(d))
        throw new Problem(path, "a deny rule must be a mapping with principal(s) and publish/subscribe");
      onlyKeys(d, ["principal", "principals", "publish", "subscribe", "reason"], path);
      const rule: DenyRule = {
        principals: principalList(d, path),
        publish: patterns(d.publish, [...path, "publish"], "publish"),
        subscribe: patterns(d.subscribe, [...path, "subscribe"], "subscribe"),
        ...(typeof d.reason === "string" ? { reason: d.reason } : {}),
      };
      if (rule.publish.length === 0 && rule.subscribe.length === 0) {
        throw new Problem(path, "a deny rule needs publish and/or subscribe patterns");
      }
      deny.push(rule);
    });
  }
  return { roles, bindings, deny, source };
}

/**
 * Parses and checks a policy (YAML). Throws `JK_POLICY_INVALID` naming the problem, its place
 * (`bindings[1].roles[0]`) and line; `details` has `path`, `line` and `column`.
 */
export function parsePolicy(text: string, source = "<inline>"): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const pos = yamlError.linePos?.[0];
    throw new JetkitError(
      PolicyErrorCodes.INVALID,
      `${source}${pos ? `:${pos.line}:${pos.col}` : ""}: not valid YAML: ${yamlError.message.split("\n")[0]}. Fix the file; the previous policy stays in force.`,
      { details: { source, ...(pos ? { line: pos.line, column: pos.col } : {}) } },
    );
  }
  try {
    return build(doc.toJS(), source);
  } catch (err) {
    if (!(err instanceof Problem)) throw err;
    // Point at the deepest node of the path that exists in the document.
    let node: unknown;
    for (let n = err.path.length; n >= 0 && !node; n--) {
      const found = n === 0 ? doc.contents : doc.getIn(err.path.slice(0, n), true);
      if (found && (isMap(found) || isSeq(found) || (found as { range?: unknown }).range)) node = found;
    }
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    const pos = range ? lineCounter.linePos(range[0]) : undefined;
    const where = err.path.length > 0 ? ` at ${pathText(err.path)}` : "";
    throw new JetkitError(
      PolicyErrorCodes.INVALID,
      `${source}${pos ? `:${pos.line}:${pos.col}` : ""}: invalid policy${where}: ${err.message}. Fix the file; the previous policy stays in force.`,
      {
        details: { source, path: pathText(err.path), ...(pos ? { line: pos.line, column: pos.col } : {}) },
      },
    );
  }
}
