import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { JetkitError } from "@jetkit/contracts";
import { ContractsCheckErrorCodes } from "./errors.js";
import { run } from "./process.js";

/** One annotation of `buf ... --error-format=json` (lint finding, breaking change, compile error). */
export interface BufAnnotation {
  readonly path: string;
  readonly line?: number;
  /** The rule id, e.g. `FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED`, or `COMPILE`. */
  readonly type: string;
  readonly message: string;
}

/** The npm package that carries buf's native binary for this machine (as `@bufbuild/buf` picks it). */
function nativePackage(): string | undefined {
  const arch = process.arch === "arm64" && process.platform === "linux" ? "aarch64" : process.arch;
  return ["linux", "darwin", "win32"].includes(process.platform)
    ? `@bufbuild/buf-${process.platform}-${arch}/bin/buf${process.platform === "win32" ? ".exe" : ""}`
    : undefined;
}

/** buf's native binary next to an installed `@bufbuild/buf` (skips the Node launcher: one process less per run). */
function nativeBuf(fromPackageJson: string): string | undefined {
  const native = nativePackage();
  if (!native) return undefined;
  try {
    const require = createRequire(fromPackageJson);
    return createRequire(require.resolve("@bufbuild/buf/package.json")).resolve(native);
  } catch {
    return undefined;
  }
}

/**
 * Where buf is: the explicit path, $JETKIT_BUF, the `@bufbuild/buf` npm package installed in the
 * repository (its native binary, else node_modules/.bin/buf), the copy this package resolves,
 * then `buf` on PATH.
 */
export function locateBuf(root: string, explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  if (env.JETKIT_BUF) return env.JETKIT_BUF;
  const fromRoot = nativeBuf(join(root, "package.json"));
  if (fromRoot) return fromRoot;
  const local = join(root, "node_modules/.bin/buf");
  if (existsSync(local)) return local;
  return nativeBuf(import.meta.url) ?? "buf";
}

/** A buf command bound to one binary. */
export interface Buf {
  /** Runs buf; returns its JSON annotations when it exits 0 or 100 (findings), throws otherwise. */
  annotations(args: readonly string[], cwd: string): Promise<BufAnnotation[]>;
}

export function bufAt(bin: string): Buf {
  return {
    async annotations(args, cwd) {
      let result: Awaited<ReturnType<typeof run>>;
      try {
        result = await run(bin, [...args, "--error-format=json"], cwd);
      } catch (err) {
        throw new JetkitError(
          ContractsCheckErrorCodes.BUF_MISSING,
          `cannot start buf (${bin}): ${(err as Error).message}. @jetkit/cli depends on @bufbuild/buf: reinstall it (npm install @jetkit/cli, or 'pnpm install' in the jetkit repository), or set JETKIT_BUF to a buf binary.`,
          { cause: err, details: { bin } },
        );
      }
      // buf prints annotations on stdout for lint/breaking and on stderr for build; exit 100 means findings.
      const annotations = parseAnnotations(`${result.stdout}\n${result.stderr}`);
      if (result.code === 0 || (result.code === 100 && annotations.length > 0)) return annotations;
      throw new JetkitError(
        ContractsCheckErrorCodes.BUF_FAILED,
        `buf ${args[0]} failed (exit ${String(result.code)}): ${(result.stderr || result.stdout).trim()}. Fix buf.yaml or the input it names, then run the check again.`,
        { details: { args, code: result.code } },
      );
    },
  };
}

function parseAnnotations(text: string): BufAnnotation[] {
  const found: BufAnnotation[] = [];
  const seen = new Set<string>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("{") || seen.has(line)) continue;
    seen.add(line);
    try {
      const a = JSON.parse(line) as { path?: string; start_line?: number; type?: string; message?: string };
      if (typeof a.type !== "string" || typeof a.message !== "string") continue;
      found.push({
        path: a.path ?? "",
        ...(a.start_line ? { line: a.start_line } : {}),
        type: a.type,
        message: a.message,
      });
    } catch {
      // Not an annotation: buf's own log line.
    }
  }
  return found;
}
