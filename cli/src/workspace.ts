import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { JetkitError } from "@jetkit/contracts";

/** The nearest directory at or above `from` that holds a buf.yaml (the contracts workspace). */
export function findWorkspaceRoot(from: string): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "buf.yaml"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/** The workspace root a contracts command works in: `--root`, else found from the current directory. */
export function requireWorkspaceRoot(root: unknown): string {
  const found = typeof root === "string" ? resolve(root) : findWorkspaceRoot(process.cwd());
  if (!found || !existsSync(join(found, "buf.yaml"))) {
    throw new JetkitError(
      "JK_CLI_FILE",
      `no buf.yaml found ${typeof root === "string" ? `in ${root}` : "here or above"}; run from the contracts repository or pass --root.`,
    );
  }
  return found;
}
