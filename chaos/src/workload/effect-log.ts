import { closeSync, openSync, writeSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { EffectEvent } from "../history.js";

/** Effect files are named `<consumer name>.effects.jsonl` in the run's effects directory. */
export const EFFECT_FILE_SUFFIX = ".effects.jsonl";
/** The `sqlite` effect mode's database in the effects directory, and its table of effects. */
export const EFFECT_DB = "effects.sqlite";
export const EFFECT_TABLE = "effects";

export function effectFile(dir: string, consumer: string): string {
  return join(dir, `${consumer}${EFFECT_FILE_SUFFIX}`);
}

/** What the handler writes per effect (one JSON line). */
export interface EffectLine {
  /** Wall clock, ms. */
  t: number;
  /** `process.hrtime.bigint()` in ns: the host's monotonic clock, shared by every process. */
  mono: string;
  id: string;
  key: string;
  pseq: number | null;
  seq: number;
  delivery: number;
  consumer: string;
  pid: number;
}

/**
 * The workload's effect: a plain append-only file per consumer process (restarts of the same
 * supervised process append to the same file). Opened with O_APPEND; each effect is one line
 * written by one write(2) before the handler returns, so a kill -9 right after it still leaves the
 * line in the file (the kernel has it), and a re-run of the handler appends a second line: nothing
 * absorbs it. No fsync: drills kill processes, never the machine, and an fsync per effect would
 * pace the handler by the disk.
 */
export class EffectLog {
  readonly path: string;
  #fd: number | undefined;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, "a");
  }

  append(line: EffectLine): void {
    if (this.#fd === undefined) throw new Error(`effect log ${this.path} is closed`);
    const text = `${JSON.stringify(line)}\n`;
    const n = writeSync(this.#fd, text);
    if (n !== Buffer.byteLength(text)) throw new Error(`short write to ${this.path}: ${n} bytes`);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** The effects of every file in `dir`, as history events; lines that do not parse are counted, not guessed. */
export async function readEffectLogs(dir: string): Promise<{ effects: EffectEvent[]; unreadable: number }> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) =>
    f.endsWith(EFFECT_FILE_SUFFIX),
  );
  const effects: EffectEvent[] = [];
  let unreadable = 0;
  for (const f of files.sort()) {
    const text = await readFile(join(dir, f), "utf8");
    let line = 0;
    for (const raw of text.split("\n")) {
      if (raw === "") continue;
      line++;
      try {
        const l = JSON.parse(raw) as EffectLine;
        effects.push({
          t: l.t,
          kind: "effect",
          id: l.id,
          key: l.key,
          seq: l.seq,
          consumer: l.consumer,
          ...(typeof l.pseq === "number" ? { pseq: l.pseq } : {}),
          pid: l.pid,
          delivery: l.delivery,
          mono: l.mono,
          line,
        });
      } catch {
        unreadable++;
      }
    }
  }
  effects.push(...readEffectDb(join(dir, EFFECT_DB)));
  return { effects: effects.sort(compareEffects), unreadable };
}

/** The effects of the `sqlite` effect mode's database (none when it does not exist). */
function readEffectDb(path: string): EffectEvent[] {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch {
    return [];
  }
  try {
    const rows = db
      .prepare(`SELECT rowid AS line, * FROM ${EFFECT_TABLE} ORDER BY rowid`)
      .all() as unknown as (EffectLine & {
      line: number;
    })[];
    return rows.map((l) => ({
      t: Number(l.t),
      kind: "effect" as const,
      id: l.id,
      key: l.key,
      seq: Number(l.seq),
      consumer: l.consumer,
      ...(typeof l.pseq === "number" ? { pseq: l.pseq } : {}),
      pid: Number(l.pid),
      delivery: Number(l.delivery),
      mono: l.mono,
      line: l.line,
    }));
  } catch {
    return [];
  } finally {
    db.close();
  }
}

/** The merged order of effects: host monotonic clock, then wall clock, then process and line. */
export function compareEffects(a: EffectEvent, b: EffectEvent): number {
  if (a.mono !== undefined && b.mono !== undefined && a.mono !== b.mono) {
    return BigInt(a.mono) < BigInt(b.mono) ? -1 : 1;
  }
  if (a.t !== b.t) return a.t - b.t;
  if (a.consumer !== b.consumer) return a.consumer < b.consumer ? -1 : 1;
  return (a.line ?? 0) - (b.line ?? 0);
}
