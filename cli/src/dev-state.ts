import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetkitHome } from "./config.js";

/** What `jetkit dev up` started, so later commands find it and `dev down` stops it. */
export interface DevState {
  mode: "single" | "cluster";
  dir: string;
  startedAt: string;
  nodes: { name: string; pid: number; url: string; monitorUrl: string; dir: string }[];
}

export function devDir(): string {
  return join(jetkitHome(), "dev");
}

export function readDevState(): DevState | undefined {
  try {
    return JSON.parse(readFileSync(join(devDir(), "state.json"), "utf8")) as DevState;
  } catch {
    return undefined;
  }
}

export async function writeDevState(state: DevState): Promise<void> {
  await mkdir(devDir(), { recursive: true });
  await writeFile(join(devDir(), "state.json"), `${JSON.stringify(state, null, 2)}\n`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
