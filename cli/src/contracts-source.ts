import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Catalog, getCatalog, JetkitError, loadCatalog } from "@jetkit/contracts";
import type { OptionDef, RunContext } from "./command.js";
import { locateBuf } from "./contracts-check/buf.js";

/** `--contracts IMAGE|DIR`: the commands that read the catalog take a team's own contracts from it. */
export const CONTRACTS_OPTION: OptionDef = {
  name: "contracts",
  type: "string",
  value: "IMAGE|DIR",
  description:
    "Your contracts: a buf image (what 'jetkit contracts generate' writes, or buf build <module> --exclude-imports --as-file-descriptor-set -o FILE) or a module directory (built with buf on the fly), relative to the current directory. jetkit's own platform events (dead letters, gateway audit) are added when the contracts lack them. Default: the example contracts packaged with @jetkit/contracts",
  env: "JETKIT_CONTRACTS",
  config: "contracts",
};

const loaded = new Map<string, Catalog>();

/** The image of a module directory, built with buf (the directory's workspace buf.yaml applies). */
function buildModule(dir: string): Uint8Array {
  const out = mkdtempSync(join(tmpdir(), "jetkit-contracts-"));
  try {
    const image = join(out, "contracts.binpb");
    const buf = locateBuf(dir);
    const r = spawnSync(buf, ["build", dir, "--exclude-imports", "--as-file-descriptor-set", "-o", image], {
      encoding: "utf8",
    });
    if (r.error || r.status !== 0) {
      throw new JetkitError(
        "JK_CLI_FILE",
        `cannot build the contracts in ${dir} with buf (${buf}): ${(r.error?.message ?? r.stderr ?? "").trim()}. Pass a module directory that 'buf build' accepts, or an image.`,
        { details: { path: dir } },
      );
    }
    return readFileSync(image);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The catalog the command works on: the image or module named by `--contracts`, else the packaged one. */
export function catalogFor(ctx: RunContext): Catalog {
  const source = ctx.opts.contracts;
  if (typeof source !== "string") return getCatalog();
  const path = resolve(source);
  const cached = loaded.get(path);
  if (cached) return cached;
  if (!existsSync(path)) {
    throw new JetkitError(
      "JK_CLI_FILE",
      `no contracts image or module at ${path}. Build the image with 'jetkit contracts generate' (or 'buf build <module dir> --exclude-imports --as-file-descriptor-set -o ${source}'), or fix --contracts / JETKIT_CONTRACTS / 'contracts' in jetkit.yaml.`,
      { details: { path } },
    );
  }
  const image = statSync(path).isDirectory() ? buildModule(path) : path;
  const catalog = loadCatalog(image, { withPlatformEvents: true });
  loaded.set(path, catalog);
  return catalog;
}
