import { readFileSync } from "node:fs";

/** Name, version and dependencies of this package, read from its own package.json (packed with it). */
export function cliPackage(): { name: string; version: string; dependencies: Record<string, string> } {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    name: string;
    version: string;
    dependencies?: Record<string, string>;
  };
  return { name: pkg.name, version: pkg.version, dependencies: pkg.dependencies ?? {} };
}
