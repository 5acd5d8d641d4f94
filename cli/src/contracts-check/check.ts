import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Catalog, inspectImage, JetkitError } from "@jetkit/contracts";
import { DEFAULT_RETRY } from "@jetkit/producers";
import { type Allowance, applyAllowances, validateAllowances } from "./allow.js";
import { type Buf, bufAt, locateBuf } from "./buf.js";
import { type CatalogBreak, catalogBreaks, duplicateWindowBreaks } from "./compat.js";
import { ContractsCheckErrorCodes } from "./errors.js";
import { fieldRuleBreaks } from "./field-rules.js";
import { breakingFix, lintFix } from "./fixes.js";
import { type Baseline, existsAt, exportPaths, repoLayout, resolveBaseline } from "./git.js";

/** Options of {@link checkContracts}. */
export interface CheckContractsOptions {
  /** The repository root: the directory that holds buf.yaml. */
  root: string;
  /**
   * Git ref to compare against (`origin/main`, a tag, a commit). Default: $JETKIT_CONTRACTS_AGAINST,
   * else the previous state of main: HEAD~1 on main, the merge-base with main on another branch.
   */
  against?: string;
  /** The branch whose previous state is the baseline. Default: `main`. */
  mainBranch?: string;
  /** The buf binary. Default: $JETKIT_BUF, `<root>/node_modules/.bin/buf`, `@bufbuild/buf`, `buf` on PATH. */
  buf?: string;
  /** The contracts module, relative to root. Default: `contracts/proto`. */
  protoDir?: string;
  /** Git-ignored protos installed at set-up time (protovalidate), relative to root. Default: `contracts/deps`. */
  depsDir?: string;
  /** Environment to read $JETKIT_CONTRACTS_AGAINST and $JETKIT_BUF from. Default: `process.env`. */
  env?: NodeJS.ProcessEnv;
  /**
   * Reviewed overrides: each accepts every finding of one rule (e.g. `FIELD_RULE_TIGHTENED`) and
   * reports it under `allowed` with the reason instead of refusing. A reason is required.
   */
  allow?: readonly Allowance[];
}

/** The checks, in the order they run. */
export type CheckStep = "lint" | "catalog" | "breaking" | "compat";

/** One refusal: where, which rule, and what to do. */
export interface ContractProblem {
  readonly step: CheckStep;
  /** File relative to root, e.g. `contracts/proto/shop/order/v1/events.proto`. */
  readonly file: string;
  readonly line?: number;
  /** buf's rule id (`FIELD_SAME_TYPE`), a catalog rule (`EVENT_SUBJECT_FORM`) or a compatibility rule (`EVENT_SUBJECT_RENAMED`). */
  readonly rule: string;
  readonly message: string;
  readonly fix: string;
}

/** A finding accepted by an override (`--allow RULE --reason ...`), reported with the reason. */
export interface AllowedProblem extends ContractProblem {
  readonly reason: string;
}

/** How one step ended; `skipped` steps say why in `note`. */
export interface StepResult {
  readonly step: CheckStep;
  readonly status: "pass" | "fail" | "skipped";
  readonly note?: string;
}

/** The outcome of {@link checkContracts}: plain data, printable with `formatCheckReport` or as JSON. */
export interface CheckReport {
  /** True when no step found a problem. */
  readonly ok: boolean;
  /** What the command should exit with: 0 pass, 1 refused. */
  readonly exitCode: 0 | 1;
  /** `JK_CONTRACTS_REFUSED` when refused. */
  readonly code?: string;
  readonly root: string;
  /** The commit compared against; absent when there was nothing to compare. */
  readonly baseline?: Baseline;
  readonly steps: readonly StepResult[];
  /** What refuses the contracts. */
  readonly problems: readonly ContractProblem[];
  /** Findings accepted by `allow`, each with its reason: for the reviewer and the changelog. */
  readonly allowed: readonly AllowedProblem[];
  /** Facts worth printing that are not problems (e.g. "nothing to compare"). */
  readonly notes: readonly string[];
}

const STEPS: readonly CheckStep[] = ["lint", "catalog", "breaking", "compat"];

/**
 * Runs every contract check CI runs: buf lint, the catalog rules, buf breaking against the
 * previous state of main (or `against`), and the catalog's compatibility rules (subjects keep
 * their message type and stream; streams are not removed). Returns a report; throws a
 * `JK_CONTRACTS_*` JetkitError only when the check cannot run (no buf, no git, unknown ref,
 * a baseline that does not build).
 */
export async function checkContracts(opts: CheckContractsOptions): Promise<CheckReport> {
  const root = resolve(opts.root);
  const env = opts.env ?? process.env;
  const allow = validateAllowances(opts.allow ?? []);
  const protoDir = opts.protoDir ?? "contracts/proto";
  const depsDir = opts.depsDir ?? "contracts/deps";
  if (!existsSync(join(root, "buf.yaml"))) {
    throw new JetkitError(
      ContractsCheckErrorCodes.BUF_FAILED,
      `${root} has no buf.yaml: run the check from the repository root (or pass root).`,
      { details: { root } },
    );
  }
  const buf = bufAt(locateBuf(root, opts.buf, env));
  const located = locatedIn(root, protoDir);
  const problems: ContractProblem[] = [];
  const notes: string[] = [];
  const skipped = new Map<CheckStep, string>();
  const skip = (steps: CheckStep[], why: string) => {
    for (const s of steps) if (!skipped.has(s)) skipped.set(s, why);
  };
  let baseline: Baseline | undefined;
  const tmp = mkdtempSync(join(tmpdir(), "jetkit-contracts-check-"));
  try {
    const chosen = await resolveBaseline(root, opts.against, env, opts.mainBranch ?? "main");
    let baseRoot: string | undefined;
    if ("none" in chosen) {
      notes.push(`nothing to compare: ${chosen.none}.`);
    } else {
      baseline = chosen;
      baseRoot = await exportBaseline(root, chosen, protoDir, depsDir, join(tmp, "baseline"));
      if (!baseRoot)
        notes.push(`nothing to compare: ${chosen.ref} (${chosen.commit.slice(0, 12)}) has no ${protoDir}.`);
    }
    if (!baseRoot) skip(["breaking", "compat"], "nothing to compare");

    // The buf runs are independent; run them together (each takes a few hundred ms).
    const [lint, current, before, breaking] = await Promise.all([
      buf.annotations(["lint"], root),
      buildCatalog(buf, root, protoDir, join(tmp, "current.binpb")),
      baseRoot ? buildCatalog(buf, baseRoot, protoDir, join(tmp, "baseline.binpb")) : undefined,
      baseRoot ? buf.annotations(["breaking", "--against", baseRoot], root) : undefined,
    ]);

    for (const a of lint) {
      problems.push({
        step: "lint",
        file: a.path,
        ...line(a.line),
        rule: a.type,
        message: a.message,
        fix: lintFix(a.type, a.message),
      });
    }
    if ("compile" in current) {
      if (!problems.some((p) => p.rule === "COMPILE")) problems.push(...current.compile);
      skip(["catalog", "breaking", "compat"], "the contracts do not compile");
    } else {
      for (const p of current.problems) {
        problems.push({
          step: "catalog",
          file: join(protoDir, p.file),
          rule: p.rule,
          message: p.message,
          fix: p.fix,
        });
      }
      if (current.catalog) {
        for (const b of duplicateWindowBreaks(current.catalog, DEFAULT_RETRY.deadlineMs))
          problems.push(located("catalog", b));
      }
    }
    if (baseline && before && "compile" in before) {
      throw new JetkitError(
        ContractsCheckErrorCodes.BASELINE_BROKEN,
        `the contracts at ${baseline.ref} (${baseline.commit.slice(0, 12)}) do not build: ${before.compile.map((p) => `${p.file}:${p.line ?? 0} ${p.message}`).join("; ")}. Compare against another ref with --against.`,
        { details: { ref: baseline.ref, commit: baseline.commit } },
      );
    }
    if (baseline && before && !("compile" in before) && breaking && !("compile" in current)) {
      for (const a of breaking) {
        problems.push({
          step: "breaking",
          file: a.path,
          ...line(a.line),
          rule: a.type,
          message: a.message,
          fix: breakingFix(a.type, a.message),
        });
      }
      if (before.catalog && current.catalog) {
        for (const b of [
          ...catalogBreaks(before.catalog, current.catalog),
          ...fieldRuleBreaks(before.catalog, current.catalog),
        ])
          problems.push(located("compat", b));
      } else {
        notes.push(
          `${baseline.ref} declares no jetkit catalog: subject and stream compatibility not checked.`,
        );
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }

  const { refused, allowed, unused } = applyAllowances(problems, allow);
  for (const a of unused)
    notes.push(
      `--allow ${a.rule} matched no finding: nothing was overridden for it (reason given: "${a.reason}").`,
    );
  problems.length = 0;
  problems.push(...refused);

  const steps = STEPS.map((step): StepResult => {
    const why = skipped.get(step);
    if (why) return { step, status: "skipped", note: why };
    return { step, status: problems.some((p) => p.step === step) ? "fail" : "pass" };
  });
  const ok = problems.length === 0;
  return {
    ok,
    exitCode: ok ? 0 : 1,
    ...(ok ? {} : { code: ContractsCheckErrorCodes.REFUSED }),
    root,
    ...(baseline ? { baseline } : {}),
    steps,
    problems,
    allowed,
    notes,
  };
}

const line = (n: number | undefined) => (n === undefined ? {} : { line: n });

/** A catalog finding as a problem: the file under the contracts module, its line from the image or its anchor. */
function locatedIn(root: string, protoDir: string) {
  return (step: CheckStep, b: CatalogBreak): ContractProblem => {
    const file = join(protoDir, b.file);
    const at = b.line ?? (b.anchor === undefined ? undefined : lineOf(join(root, file), b.anchor));
    return { step, file, ...line(at), rule: b.rule, message: b.message, fix: b.fix };
  };
}

/** The 1-based line of the first occurrence of `text` in `path`, if the file and the text exist. */
function lineOf(path: string, text: string): number | undefined {
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const at = source.indexOf(text);
  return at < 0 ? undefined : source.slice(0, at).split("\n").length;
}

type Built =
  | { compile: ContractProblem[] }
  | {
      catalog: Catalog | undefined;
      problems: { file: string; rule: string; message: string; fix: string }[];
    };

/** Builds the contracts module at `root` into an image and reads its catalog. */
async function buildCatalog(buf: Buf, root: string, protoDir: string, out: string): Promise<Built> {
  const errors = await buf.annotations(
    ["build", protoDir, "--exclude-imports", "--as-file-descriptor-set", "-o", out],
    root,
  );
  if (errors.length > 0) {
    return {
      compile: errors.map((a) => ({
        step: "lint" as const,
        file: a.path,
        ...line(a.line),
        rule: a.type,
        message: a.message,
        fix: lintFix(a.type, a.message),
      })),
    };
  }
  try {
    const { catalog, problems } = inspectImage(readFileSync(out));
    return { catalog, problems };
  } catch (err) {
    // No jetkit options in the image: not a catalog at all.
    return {
      catalog: undefined,
      problems: [
        {
          file: ".",
          rule: "CATALOG_INVALID",
          message: (err as Error).message,
          fix: "keep contracts/proto/jetkit/v1/options.proto in the contracts module.",
        },
      ],
    };
  }
}

/**
 * Writes the baseline's contracts (git archive of the contracts module and buf.yaml) into `dir`,
 * with the git-ignored deps copied from the working tree. Returns the baseline's root, or
 * undefined when the commit has no contracts.
 */
async function exportBaseline(
  root: string,
  baseline: Baseline,
  protoDir: string,
  depsDir: string,
  dir: string,
): Promise<string | undefined> {
  const { top, prefix } = await repoLayout(root);
  if (!(await existsAt(top, baseline.commit, `${prefix}${protoDir}`))) return undefined;
  const hasBufYaml = await existsAt(top, baseline.commit, `${prefix}buf.yaml`);
  await exportPaths(
    top,
    baseline.commit,
    [`${prefix}${protoDir}`, ...(hasBufYaml ? [`${prefix}buf.yaml`] : [])],
    dir,
  );
  const baseRoot = join(dir, prefix);
  if (!hasBufYaml) cpSync(join(root, "buf.yaml"), join(baseRoot, "buf.yaml"));
  if (existsSync(join(root, depsDir)))
    cpSync(join(root, depsDir), join(baseRoot, depsDir), { recursive: true });
  return baseRoot;
}
