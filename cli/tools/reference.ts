// Writes docs/cli.md from the command definitions (the same ones that print --help).
import { writeFileSync } from "node:fs";
import { commands, referenceMarkdown } from "../src/index.js";

const target = new URL("../../../docs/cli.md", import.meta.url);
writeFileSync(target, referenceMarkdown(commands));
console.log(`wrote ${target.pathname}`);
