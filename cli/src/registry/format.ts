import type { HistoryCheck, RegistryAllowed, RegistryProblem } from "./check.js";
import type { VersionDiff } from "./diff.js";
import { RegistryErrorCodes } from "./errors.js";
import { formatModes } from "./modes.js";
import type { PushResult } from "./push.js";
import type { VersionRecord } from "./store.js";

const where = (p: RegistryProblem) => `${p.file || "."}${p.line ? `:${p.line}` : ""}`;
const against = (p: RegistryProblem) =>
  p.against === undefined ? "the image itself" : `v${p.against} (${p.direction ?? "backward"})`;

/** Findings as `jetkit contracts check` prints them (`file:line: [RULE] message`, then the fix), grouped by the version compared against. */
export function formatFindings(check: HistoryCheck): string[] {
  const lines: string[] = [];
  let group = "";
  for (const p of check.problems) {
    if (against(p) !== group) {
      group = against(p);
      lines.push(`against ${group}:`);
    }
    lines.push(`${where(p)}: [${p.rule}] ${p.message}`);
    lines.push(`    fix: ${p.fix}`);
  }
  for (const p of check.allowed) {
    lines.push(`${where(p)}: [${p.rule}] ALLOWED against ${against(p)}: ${p.message}`);
    lines.push(`    reason: ${p.reason}${p.allowedIn ? ` (allowed when v${p.allowedIn} was pushed)` : ""}`);
  }
  for (const p of check.waived)
    lines.push(`${where(p)}: [${p.rule}] not checked (mode ${p.mode}) against ${against(p)}: ${p.message}`);
  for (const n of check.notes) lines.push(`note: ${n}`);
  return lines;
}

export function formatPush(r: PushResult): string {
  const lines: string[] = [];
  if (r.status === "unchanged") {
    lines.push(
      `unchanged: version ${r.version} already is this image (${r.digest}) with modes ${formatModes(r.modes)}; no new version.`,
    );
    return lines.join("\n");
  }
  lines.push(
    `contracts push: ${r.digest}, checked against ${r.checkedAgainst} registered version(s), modes ${formatModes(r.modes)}`,
  );
  if (r.check) lines.push(...formatFindings(r.check));
  if (r.status === "refused")
    lines.push(
      `refused [${RegistryErrorCodes.REFUSED}]: ${r.check?.problems.length ?? 0} problem(s); nothing was stored. Fix them, accept a reviewed rule with --allow RULE --reason "...", or change the mode of the stream or package with --mode.`,
    );
  else lines.push(`stored: version ${r.version}`);
  return lines.join("\n");
}

const ref = (r: VersionRecord) =>
  r.git ? `${r.git.ref ?? "?"}@${(r.git.commit ?? "").slice(0, 12)}` : "no git ref";

export function formatList(versions: readonly VersionRecord[]): string {
  if (versions.length === 0) return "the registry is empty: push the contracts with 'jetkit contracts push'.";
  return versions
    .map(
      (r) =>
        `v${r.version}  ${r.when}  ${r.digest.slice(0, 19)}  ${r.events.length} event(s)  ${r.who}  ${ref(r)}  ${r.message}`,
    )
    .join("\n");
}

const allowance = (a: RegistryAllowed) =>
  `[${a.rule}] ${a.file}: ${a.message} (against v${a.against ?? "?"}) -- reason: ${a.reason}`;

export function formatShow(r: VersionRecord): string {
  const lines = [
    `version ${r.version}`,
    `  digest   ${r.digest} (${r.size} bytes)`,
    `  who      ${r.who}`,
    `  when     ${r.when}`,
    `  git      ${ref(r)}`,
    `  message  ${r.message || "(none)"}`,
    `  modes    ${formatModes(r.modes)}`,
    "events:",
    ...r.events.map((e) => `  ${e.type}  ${e.subject}  (stream ${e.stream})`),
    "streams:",
    ...r.streams.map((s) => `  ${s.name}  ${s.subjects.join(", ")}`),
  ];
  if (r.allowed.length > 0) lines.push("allowed:", ...r.allowed.map((a) => `  ${allowance(a)}`));
  return lines.join("\n");
}

export function formatDiff(d: VersionDiff): string {
  const lines = [`v${d.from} -> v${d.to}:`];
  if (d.changes.length === 0) lines.push("  no change to events or streams");
  for (const c of d.changes) lines.push(`  ${c.text}`);
  lines.push(
    d.compatible
      ? `compatible: v${d.to} may follow v${d.from} under v${d.to}'s modes.`
      : `incompatible: ${d.rules.join(", ")}`,
  );
  lines.push(...formatFindings(d.check));
  return lines.join("\n");
}

/** One version's entry of the changelog. */
export interface LogEntry {
  readonly record: VersionRecord;
  /** The diff from the version before; absent for the first. */
  readonly diff?: VersionDiff;
}

/** The changelog, newest first: per version who/when/ref, what changed, compatible or not and why, overrides with reasons. */
export function formatLog(entries: readonly LogEntry[]): string {
  if (entries.length === 0) return "the registry is empty: push the contracts with 'jetkit contracts push'.";
  const out: string[] = [];
  for (const { record: r, diff } of [...entries].reverse()) {
    out.push(`## v${r.version} - ${r.when} - ${r.who} - ${ref(r)}`);
    if (r.message) out.push(r.message);
    if (!diff) {
      out.push(
        `First version: ${r.events.length} event(s) on ${r.streams.length} stream(s) (${r.streams.map((s) => s.name).join(", ")}).`,
      );
    } else if (diff.changes.length === 0) {
      out.push(`No change to events or streams since v${diff.from}; modes now ${formatModes(r.modes)}.`);
    } else {
      out.push(`Changes since v${diff.from}:`);
      for (const c of diff.changes) out.push(`- ${c.text}`);
    }
    if (diff && !diff.compatible)
      out.push(`Incompatible with v${diff.from}: ${diff.rules.join(", ")}; accepted because:`);
    for (const a of r.allowed) out.push(`- allowed by review: ${allowance(a)}`);
    for (const w of r.waived)
      out.push(
        `- not checked (mode ${w.mode}): [${w.rule}] ${w.file} against v${w.against ?? "?"}: ${w.message}`,
      );
    if (r.allowed.length === 0 && r.waived.length === 0 && (!diff || diff.compatible))
      out.push(
        r.version === 1
          ? `Modes: ${formatModes(r.modes)}.`
          : `Compatible with every earlier version (checked transitively; modes: ${formatModes(r.modes)}).`,
      );
    out.push("");
  }
  return out.join("\n").trimEnd();
}
