import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { ContractsCheckErrorCodes } from "./errors.js";
import { run } from "./process.js";

/** The commit the contracts are compared against, and how it was chosen. */
export interface Baseline {
  /** The ref as given or chosen, e.g. `origin/main`, `HEAD~1`. */
  readonly ref: string;
  /** The full commit id it resolved to. */
  readonly commit: string;
  /** Why this ref: `option`, `env` ($JETKIT_CONTRACTS_AGAINST), `main` (HEAD~1 on main), `merge-base`. */
  readonly source: "option" | "env" | "main" | "merge-base";
}

async function git(cwd: string, args: string[]): Promise<{ ok: boolean; out: string; err: string }> {
  let r: Awaited<ReturnType<typeof run>>;
  try {
    r = await run("git", args, cwd);
  } catch (err) {
    throw new JetkitError(
      ContractsCheckErrorCodes.GIT_FAILED,
      `cannot start git: ${(err as Error).message}. Install git; the check compares against a git ref.`,
      { cause: err },
    );
  }
  return { ok: r.code === 0, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** The repository's top directory and the path of `root` inside it ("" at the top, else ending in "/"). */
export async function repoLayout(root: string): Promise<{ top: string; prefix: string }> {
  const r = await git(root, ["rev-parse", "--show-toplevel", "--show-prefix"]);
  if (!r.ok) {
    throw new JetkitError(
      ContractsCheckErrorCodes.GIT_FAILED,
      `${root} is not inside a git repository (${r.err}). The check compares the contracts with a git ref: run it in a clone.`,
      { details: { root } },
    );
  }
  const [top = root, prefix = ""] = r.out.split("\n");
  return { top, prefix: prefix.trim() };
}

async function commitOf(root: string, ref: string): Promise<string | undefined> {
  const r = await git(root, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]);
  return r.ok && r.out ? r.out : undefined;
}

/**
 * The commit to compare against: `against` if given, else $JETKIT_CONTRACTS_AGAINST, else the
 * previous state of `main`: HEAD~1 when on main, the merge-base with main (or origin/main) on
 * another branch. Undefined when there is no previous state (first commit, no main branch).
 */
export async function resolveBaseline(
  root: string,
  against: string | undefined,
  env: NodeJS.ProcessEnv,
  mainBranch: string,
): Promise<Baseline | { none: string }> {
  const explicit = against ?? env.JETKIT_CONTRACTS_AGAINST;
  if (explicit) {
    const commit = await commitOf(root, explicit);
    if (!commit) {
      throw new JetkitError(
        ContractsCheckErrorCodes.REF_UNKNOWN,
        `"${explicit}" does not name a commit in this repository. Fetch it first (git fetch origin ${mainBranch}; in GitHub Actions check out with fetch-depth: 0) or pass another ref with --against.`,
        { details: { ref: explicit } },
      );
    }
    return { ref: explicit, commit, source: against ? "option" : "env" };
  }
  const branch = (await git(root, ["rev-parse", "--abbrev-ref", "HEAD"])).out;
  if (branch === mainBranch) {
    const commit = await commitOf(root, "HEAD~1");
    return commit
      ? { ref: "HEAD~1", commit, source: "main" }
      : { none: `HEAD is the first commit of ${mainBranch}: there is no previous state to compare with` };
  }
  for (const candidate of [mainBranch, `origin/${mainBranch}`]) {
    if (!(await commitOf(root, candidate))) continue;
    const base = await git(root, ["merge-base", "HEAD", candidate]);
    if (base.ok && base.out)
      return { ref: `merge-base(HEAD, ${candidate})`, commit: base.out, source: "merge-base" };
  }
  return {
    none: `branch ${branch || "(none)"} shares no history with ${mainBranch} or origin/${mainBranch}: pass --against <ref> to compare`,
  };
}

/** True when `path` (relative to the repository top) exists at `commit`. */
export async function existsAt(root: string, commit: string, path: string): Promise<boolean> {
  return (await git(root, ["cat-file", "-e", `${commit}:${path}`])).ok;
}

/** Writes `paths` (relative to the repository top `top`) as they are at `commit` into `dir`. */
export async function exportPaths(top: string, commit: string, paths: string[], dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const tar = join(dir, "baseline.tar");
  const archive = await git(top, ["archive", "--format=tar", "-o", tar, commit, "--", ...paths]);
  if (!archive.ok) {
    throw new JetkitError(
      ContractsCheckErrorCodes.GIT_FAILED,
      `git archive ${commit} failed: ${archive.err}`,
      { details: { commit, paths } },
    );
  }
  const untar = await run("tar", ["-xf", tar, "-C", dir], dir).catch((err: Error) => ({
    code: -1,
    stdout: "",
    stderr: err.message,
  }));
  if (untar.code !== 0) {
    throw new JetkitError(
      ContractsCheckErrorCodes.GIT_FAILED,
      `cannot unpack the baseline: ${untar.stderr}`,
      {
        details: { commit },
      },
    );
  }
}
