import { type FSWatcher, watch } from "node:fs";
import { basename, dirname, resolve } from "node:path";

/**
 * Calls `onChange` (debounced) when any of `files` changes. Watches the parent directories, not
 * the files: editors and `mv` replace a file with a new inode, which a watch on the file itself
 * would silently lose.
 */
export function watchFiles(files: readonly string[], onChange: () => void, debounceMs = 200): () => void {
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const abs = resolve(f);
    const set = byDir.get(dirname(abs)) ?? new Set<string>();
    set.add(basename(abs));
    byDir.set(dirname(abs), set);
  }
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      onChange();
    }, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    const w = watch(dir, { persistent: false }, (_event, name) => {
      // some platforms give no file name: then any change in the directory counts
      if (!name || names.has(String(name)) || [...names].some((n) => String(name).startsWith(`${n}.`)))
        fire();
    });
    w.on("error", () => undefined);
    watchers.push(w);
  }
  return () => {
    if (timer) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
