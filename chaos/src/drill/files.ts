import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { parse } from "yaml";
import { ChaosError, ChaosErrorCodes } from "../errors.js";
import type { Drill } from "./spec.js";
import { type DrillProblem, validateDrillDocument } from "./validate.js";

/** A drill file as `listDrills` shows it. */
export interface DrillSummary {
  file: string;
  name: string;
  description: string;
  /** Problems when the file does not validate (then name is the file name). */
  problems: DrillProblem[];
}

/** Reads, parses (YAML or JSON) and validates a drill file. Throws `JK_DRILL_UNREADABLE` or `JK_DRILL_INVALID`. */
export async function loadDrill(file: string): Promise<Drill> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new ChaosError(
      ChaosErrorCodes.DRILL_UNREADABLE,
      `cannot read drill file ${file}: ${(err as Error).message}`,
      {
        cause: err,
        details: { file },
      },
    );
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true });
  } catch (err) {
    throw new ChaosError(
      ChaosErrorCodes.DRILL_UNREADABLE,
      `drill file ${file} is not valid YAML/JSON: ${(err as Error).message}`,
      { cause: err, details: { file } },
    );
  }
  const { drill, problems } = validateDrillDocument(doc, file);
  if (!drill) {
    throw new ChaosError(
      ChaosErrorCodes.DRILL_INVALID,
      `drill file ${file} is invalid:\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n")}`,
      { details: { file, problems } },
    );
  }
  return drill;
}

/** Validates a drill file; returns its problems (empty when it is valid) instead of throwing. */
export async function validateDrill(
  file: string,
): Promise<{ valid: boolean; drill?: Drill; problems: DrillProblem[] }> {
  try {
    const drill = await loadDrill(file);
    return { valid: true, drill, problems: [] };
  } catch (err) {
    if (err instanceof ChaosError && err.code === ChaosErrorCodes.DRILL_INVALID) {
      return { valid: false, problems: err.details.problems as DrillProblem[] };
    }
    if (err instanceof ChaosError)
      return { valid: false, problems: [{ path: "(file)", message: err.message }] };
    throw err;
  }
}

/** Lists the drill files (`*.yaml`, `*.yml`, `*.json`) of a directory with their names and problems. */
export async function listDrills(dir: string): Promise<DrillSummary[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new ChaosError(
      ChaosErrorCodes.DRILL_DIR,
      `cannot list drills in ${dir}: ${(err as Error).message}`,
      {
        cause: err,
        details: { dir },
      },
    );
  }
  const files = entries.filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  return Promise.all(
    files.map(async (f) => {
      const file = join(dir, f);
      const res = await validateDrill(file);
      return {
        file,
        name: res.drill?.name ?? basename(f).replace(/\.(ya?ml|json)$/, ""),
        description: res.drill?.description ?? "",
        problems: res.problems,
      };
    }),
  );
}
