import { writeFile } from "node:fs/promises";
import type { DrillReport } from "../drill/run.js";
import { renderHtml } from "./html.js";
import { renderMarkdown } from "./markdown.js";

/** Writes report.json, report.md and report.html next to the history. */
export async function writeReports(report: DrillReport): Promise<void> {
  await writeFile(report.files.json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(report.files.markdown, renderMarkdown(report));
  await writeFile(report.files.html, renderHtml(report));
}
