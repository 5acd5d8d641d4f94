import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { Catalog } from "@jetkit/contracts";
import { DEFAULT_RETRY } from "@jetkit/producers";
import { type Allowance, applyAllowances } from "../contracts-check/allow.js";
import { bufAt } from "../contracts-check/buf.js";
import type { AllowedProblem, CheckStep, ContractProblem } from "../contracts-check/check.js";
import { type CatalogBreak, catalogBreaks, duplicateWindowBreaks } from "../contracts-check/compat.js";
import { fieldRuleBreaks } from "../contracts-check/field-rules.js";
import { breakingFix } from "../contracts-check/fixes.js";
import { completeImage, type ReadImage } from "./image.js";
import { type CompatibilityMode, type Modes, modeFor } from "./modes.js";

/**
 * buf breaking's rules for a push, as jetkit's own workspace and `jetkit init` configure them:
 * FILE, deleting a field only with its number and name reserved.
 */
export const REGISTRY_BREAKING_CONFIG = JSON.stringify({
  version: "v2",
  breaking: {
    use: ["FILE", "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", "FIELD_NO_DELETE_UNLESS_NAME_RESERVED"],
    except: ["FIELD_NO_DELETE"],
  },
});

/** `backward`: the registered version's events read by the new contracts; `forward`: the new events read by the registered version. */
export type Direction = "backward" | "forward";

/** A finding of a push, with the registered version it was compared against. */
export interface RegistryProblem extends ContractProblem {
  /** The version compared against; absent for the new image's own catalog rules. */
  readonly against?: number;
  readonly direction?: Direction;
}

export interface RegistryAllowed extends AllowedProblem {
  readonly against?: number;
  readonly direction?: Direction;
  /** The version whose push allowed this finding first, when it was not this push. */
  readonly allowedIn?: number;
}

/** A finding not applied because the mode of its stream or package does not check it. */
export interface RegistryWaived extends RegistryProblem {
  readonly mode: CompatibilityMode;
}

/** One registered version as the check needs it. */
export interface HistoryEntry {
  readonly version: number;
  readonly catalog: Catalog;
  /** Findings earlier pushes accepted with `--allow`, with their reasons. */
  readonly allowed: readonly RegistryAllowed[];
}

export interface HistoryCheck {
  readonly ok: boolean;
  readonly problems: readonly RegistryProblem[];
  readonly allowed: readonly RegistryAllowed[];
  readonly waived: readonly RegistryWaived[];
  readonly notes: readonly string[];
}

/** Rules that compare what readers rely on; the others are about the stream's stored history only. */
const READER_RULES = new Set<string>([
  "EVENT_TYPE_CHANGED",
  "EVENT_STREAM_MOVED",
  "EVENT_PARTITION_KEY_CHANGED",
  "FIELD_RULE_TIGHTENED",
  "FIELD_RULE_ADDED",
  "FIELD_REQUIRED_ADDED",
  "MESSAGE_RULE_ADDED",
]);

/** buf processes at once: a push is checked against every version, and a registry can hold many. */
const BUF_AT_ONCE = 4;

/** Runs `f` on every item, at most `limit` at a time. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  f: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await f(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const ownFiles = (bytes: Uint8Array) =>
  new Set(fromBinary(FileDescriptorSetSchema, bytes).file.map((f) => f.name));

function problem(step: CheckStep, b: CatalogBreak): ContractProblem {
  return {
    step,
    file: b.file,
    ...(b.line === undefined ? {} : { line: b.line }),
    rule: b.rule,
    message: b.message,
    fix: b.fix,
  };
}

/** Options of {@link checkHistory}. */
export interface CheckHistoryOptions {
  readonly image: ReadImage;
  /** Every registered version, oldest first. */
  readonly history: readonly HistoryEntry[];
  readonly modes: Modes;
  readonly allow?: readonly Allowance[];
  /** The buf binary. */
  readonly buf: string;
}

/**
 * Checks a new image against EVERY registered version (transitive) with the rules of
 * `jetkit contracts check`: the catalog rules on the image itself, then per version buf
 * breaking (FILE) and jetkit's compatibility and stored-history rules (`backward`), plus the
 * same event rules the other way round for streams and packages in `full` mode (old readers
 * validate new events). Findings in a `none` scope are waived, not refused.
 */
export async function checkHistory(opts: CheckHistoryOptions): Promise<HistoryCheck> {
  const { image, history, modes } = opts;
  const found: RegistryProblem[] = [];
  const waived: RegistryWaived[] = [];
  const notes: string[] = [];
  for (const p of image.problems) found.push({ step: "catalog", ...p });
  for (const b of duplicateWindowBreaks(image.catalog, DEFAULT_RETRY.deadlineMs))
    found.push(problem("catalog", b));

  const anyChecked =
    modes.default !== "none" ||
    Object.values(modes.streams).some((m) => m !== "none") ||
    Object.values(modes.packages).some((m) => m !== "none");
  const tmp = mkdtempSync(join(tmpdir(), "jetkit-registry-check-"));
  try {
    const buf = bufAt(opts.buf);
    const current = join(tmp, "new.binpb");
    if (anyChecked && history.length > 0) writeFileSync(current, completeImage(image.catalog));
    const mine = ownFiles(image.bytes);
    await eachLimited(history, BUF_AT_ONCE, async (h) => {
      const apply = (p: ContractProblem, direction: Direction) => {
        const mode = modeFor(modes, [image.catalog, h.catalog], p.file);
        const entry = { ...p, against: h.version, direction };
        if (mode === "full" || (mode === "backward" && direction === "backward")) found.push(entry);
        else if (mode === "none") waived.push({ ...entry, mode });
      };
      if (!anyChecked) return;
      const old = join(tmp, `v${h.version}.binpb`);
      writeFileSync(old, completeImage(h.catalog));
      const annotations = await buf.annotations(
        ["breaking", current, "--against", old, "--config", REGISTRY_BREAKING_CONFIG],
        tmp,
      );
      for (const a of annotations) {
        if (!mine.has(a.path) && a.path !== "") continue;
        apply(
          {
            step: "breaking",
            file: a.path,
            ...(a.line ? { line: a.line } : {}),
            rule: a.type,
            message: a.message,
            fix: breakingFix(a.type, a.message),
          },
          "backward",
        );
      }
      for (const b of [
        ...catalogBreaks(h.catalog, image.catalog),
        ...fieldRuleBreaks(h.catalog, image.catalog),
      ])
        apply(problem("compat", b), "backward");
      // Full mode: the registered version's readers see the new events; the same rules, the other way round.
      for (const b of [
        ...catalogBreaks(image.catalog, h.catalog),
        ...fieldRuleBreaks(image.catalog, h.catalog),
      ]) {
        if (!READER_RULES.has(b.rule)) continue;
        apply(
          {
            ...problem("compat", b),
            message: `readers built with v${h.version} would check new events by its rules (full mode): ${b.message}`,
            fix: `keep the change compatible both ways (v${h.version}'s readers still run), or check this scope backward only: --mode <STREAM or package>=backward. As the rule reads from the new side: ${b.fix}`,
          },
          "forward",
        );
      }
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  found.sort((a, b) => (a.against ?? 0) - (b.against ?? 0));

  const { refused, allowed, unused } = applyAllowances(found, opts.allow ?? []);
  for (const a of unused)
    notes.push(
      `--allow ${a.rule} matched no finding: nothing was overridden for it (reason given: "${a.reason}").`,
    );
  // A finding a later version's push already allowed (the same change seen against an older version) stays allowed.
  const problems: RegistryProblem[] = [];
  const allowedAll: RegistryAllowed[] = allowed as RegistryAllowed[];
  for (const p of refused as RegistryProblem[]) {
    const earlier = history
      .filter((h) => p.against !== undefined && h.version > p.against)
      .flatMap((h) =>
        h.allowed
          .filter((a) => a.rule === p.rule && a.file === p.file && a.message === p.message)
          .map((a) => ({ a, version: h.version })),
      )[0];
    if (earlier) allowedAll.push({ ...p, reason: earlier.a.reason, allowedIn: earlier.version });
    else problems.push(p);
  }
  return { ok: problems.length === 0, problems, allowed: allowedAll, waived, notes };
}
