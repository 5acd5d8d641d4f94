import { type Catalog, JetkitError } from "@jetkit/contracts";

/**
 * How a push is checked against the registered versions: `backward` (new readers read old
 * events: the rules of `jetkit contracts check`), `full` (also old readers read new events),
 * `none` (development: no compatibility rule, only the catalog rules).
 */
export type CompatibilityMode = "backward" | "full" | "none";

export const COMPATIBILITY_MODES: readonly CompatibilityMode[] = ["backward", "full", "none"];

/** The modes of a version: a default, and overrides per stream (`ORDER`) or proto package (`shop.order.v1`). */
export interface Modes {
  readonly default: CompatibilityMode;
  readonly streams: Readonly<Record<string, CompatibilityMode>>;
  readonly packages: Readonly<Record<string, CompatibilityMode>>;
}

export const DEFAULT_MODES: Modes = { default: "backward", streams: {}, packages: {} };

const STRICTNESS: Record<CompatibilityMode, number> = { none: 0, backward: 1, full: 2 };

function mode(value: string, flag: string): CompatibilityMode {
  if ((COMPATIBILITY_MODES as readonly string[]).includes(value)) return value as CompatibilityMode;
  throw new JetkitError(
    "JK_CLI_USAGE",
    `--mode ${flag}: "${value}" is not a compatibility mode; use backward (default), full or none.`,
  );
}

/**
 * `--mode` values on top of the modes in force (the latest version's): `full` sets the default,
 * `ORDER=none` one stream (upper-case, as the contracts name streams), `shop.order.v1=full` one
 * package (and the packages below it). `SCOPE=default` drops an override.
 */
export function parseModes(values: readonly string[], base: Modes): Modes {
  let def = base.default;
  const streams: Record<string, CompatibilityMode> = { ...base.streams };
  const packages: Record<string, CompatibilityMode> = { ...base.packages };
  for (const v of values) {
    const at = v.indexOf("=");
    if (at < 0) {
      def = mode(v, v);
      continue;
    }
    const scope = v.slice(0, at);
    const value = v.slice(at + 1);
    const target = /^[A-Z][A-Z0-9_-]*$/.test(scope)
      ? streams
      : /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$/.test(scope)
        ? packages
        : undefined;
    if (!target) {
      throw new JetkitError(
        "JK_CLI_USAGE",
        `--mode ${v}: "${scope}" is neither a stream (upper-case, e.g. ORDER) nor a proto package (e.g. shop.order.v1).`,
      );
    }
    if (value === "default") delete target[scope];
    else target[scope] = mode(value, v);
  }
  return { default: def, streams, packages };
}

/** The modes as `--mode` arguments, e.g. `backward ORDER=full`. */
export function formatModes(m: Modes): string {
  return [
    m.default,
    ...Object.entries(m.streams).map(([k, v]) => `${k}=${v}`),
    ...Object.entries(m.packages).map(([k, v]) => `${k}=${v}`),
  ].join(" ");
}

export const sameModes = (a: Modes, b: Modes) => formatModes(a) === formatModes(b);

/**
 * The mode that governs a finding in `file` (relative to the contracts module): the strictest
 * mode of the streams its events or stream options belong to, else that of its package (the
 * longest matching package prefix), else the default.
 */
export function modeFor(modes: Modes, catalogs: readonly Catalog[], file: string): CompatibilityMode {
  const streams = new Set<string>();
  let pkg: string | undefined;
  for (const c of catalogs) {
    for (const e of c.events) if (e.file === file) streams.add(e.stream);
    for (const s of c.streams) if (s.file === file) streams.add(s.name);
    pkg ??= c.registry.getFile(file)?.proto.package;
  }
  const byStream = [...streams].map((s) => modes.streams[s]).filter((m) => m !== undefined);
  if (byStream.length > 0) return byStream.reduce((a, b) => (STRICTNESS[b] > STRICTNESS[a] ? b : a));
  if (pkg !== undefined) {
    let best: string | undefined;
    for (const p of Object.keys(modes.packages)) {
      if ((pkg === p || pkg.startsWith(`${p}.`)) && (best === undefined || p.length > best.length)) best = p;
    }
    if (best !== undefined) return modes.packages[best] ?? modes.default;
  }
  return modes.default;
}
