import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { type Catalog, getCatalog, JetkitError, loadCatalog } from "@jetkit/contracts";
import type { OptionDef, RunContext } from "./command.js";

/** `--contracts IMAGE`: the commands that read the catalog take a team's own contracts from it. */
export const CONTRACTS_OPTION: OptionDef = {
  name: "contracts",
  type: "string",
  value: "IMAGE",
  description:
    "Your contracts as a buf image (buf build <module> --exclude-imports --as-file-descriptor-set -o FILE), relative to the current directory. Default: the example contracts packaged with @jetkit/contracts",
  env: "JETKIT_CONTRACTS",
  config: "contracts",
};

const loaded = new Map<string, Catalog>();

/** The catalog the command works on: the image named by `--contracts`, else the packaged one. */
export function catalogFor(ctx: RunContext): Catalog {
  const image = ctx.opts.contracts;
  if (typeof image !== "string") return getCatalog();
  const path = resolve(image);
  const cached = loaded.get(path);
  if (cached) return cached;
  if (!existsSync(path)) {
    throw new JetkitError(
      "JK_CLI_FILE",
      `no contracts image at ${path}. Build it from your contracts module with 'buf build <module dir> --exclude-imports --as-file-descriptor-set -o ${image}', or fix --contracts / JETKIT_CONTRACTS / 'contracts' in jetkit.yaml.`,
      { details: { path } },
    );
  }
  const catalog = loadCatalog(path);
  loaded.set(path, catalog);
  return catalog;
}
