import { createHash } from "node:crypto";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { dirname, resolve } from "node:path";

/** Options of {@link watchFiles}. */
export interface WatchOptions {
  /** Quiet time after the last change before `onChange` runs, ms. Default: 200. */
  debounceMs: number;
  /** Slow poll of the files' contents, for file systems whose events do not arrive, ms. 0: none. Default: 10000. */
  pollMs: number;
}

function digest(file: string): string {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return "missing";
  }
}

/**
 * Calls `onChange` (debounced) when the content of any of `files` changes. Watches the parent
 * directories and reacts to any change in them, then compares content hashes: editors and `mv`
 * replace a file with a new inode, and Kubernetes updates a Secret or ConfigMap volume by swapping
 * its `..data` symlink, so the event names neither the file nor its inode. A slow poll of the
 * hashes catches what the events miss (network file systems).
 */
export function watchFiles(
  files: readonly string[],
  onChange: () => void,
  opts: Partial<WatchOptions> = {},
): () => void {
  const paths = [...new Set(files.map((f) => resolve(f)))];
  const hashes = new Map(paths.map((p) => [p, digest(p)]));
  const check = () => {
    let changed = false;
    for (const p of paths) {
      const h = digest(p);
      if (h !== hashes.get(p)) {
        hashes.set(p, h);
        changed = true;
      }
    }
    if (changed) onChange();
  };
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      check();
    }, opts.debounceMs ?? 200);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(paths.map((p) => dirname(p)))) {
    const w = watch(dir, { persistent: false }, fire);
    w.on("error", () => undefined);
    watchers.push(w);
  }
  const pollMs = opts.pollMs ?? 10_000;
  const poll = pollMs > 0 ? setInterval(check, pollMs) : undefined;
  poll?.unref();
  return () => {
    if (timer) clearTimeout(timer);
    if (poll) clearInterval(poll);
    for (const w of watchers) w.close();
  };
}
