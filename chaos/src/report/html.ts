import type { Window } from "../checker.js";
import type { DrillReport } from "../drill/run.js";

const esc = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch] ?? ch,
  );

interface Series {
  label: string;
  color: string;
  values: (number | null)[];
}

/** An inline SVG line chart over the drill's time windows, with fault windows shaded. */
function chart(
  title: string,
  unit: string,
  windows: Window[],
  series: Series[],
  faults: { from: number; to: number; name: string }[],
  windowMs: number,
): string {
  const W = 760;
  const H = 220;
  const L = 56;
  const B = 28;
  const T = 24;
  const span = Math.max(1, windows.length * windowMs);
  const max = Math.max(1, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const x = (t: number) => L + (t / span) * (W - L - 10);
  const y = (v: number) => H - B - (v / max) * (H - B - T);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`,
  );
  parts.push(`<text x="${L}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`);
  for (const f of faults) {
    parts.push(
      `<rect x="${x(f.from).toFixed(1)}" y="${T}" width="${Math.max(2, x(f.to) - x(f.from)).toFixed(1)}" height="${H - B - T}" fill="#f4a261" opacity="0.25"><title>${esc(f.name)}</title></rect>`,
    );
  }
  parts.push(
    `<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>`,
  );
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    parts.push(
      `<text x="${L - 4}" y="${y(v) + 4}" font-size="10" text-anchor="end">${Math.round(v)}${unit}</text>`,
    );
  }
  const step = Math.max(1, Math.ceil(windows.length / 10));
  for (let i = 0; i < windows.length; i += step) {
    parts.push(
      `<text x="${x(i * windowMs)}" y="${H - 10}" font-size="10" text-anchor="middle">${(i * windowMs) / 1000}s</text>`,
    );
  }
  series.forEach((s, si) => {
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null) return;
      d += `${d === "" || s.values[i - 1] === null ? "M" : "L"}${x(i * windowMs + windowMs / 2).toFixed(1)},${y(v).toFixed(1)} `;
    });
    parts.push(`<path d="${d.trim()}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(
      `<rect x="${W - 180}" y="${T + si * 16}" width="10" height="10" fill="${s.color}"/><text x="${W - 165}" y="${T + 9 + si * 16}" font-size="11">${esc(s.label)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

/** A self-contained HTML page (inline CSS and SVG, no external assets) with the report and plots. */
export function renderHtml(r: DrillReport): string {
  const windowMs = r.check.windows.length > 1 ? r.check.windows[1]!.t - r.check.windows[0]!.t : 1000;
  const faults = r.faults
    .filter((f) => f.startedAt !== undefined)
    .map((f) => ({
      from: (f.startedAt ?? 0) - r.check.startedAt,
      to: (f.endedAt ?? f.startedAt ?? 0) - r.check.startedAt + (f.endedAt === f.startedAt ? 200 : 0),
      name: `${f.name}: ${f.detail}`,
    }));
  const w = r.check.windows;
  const throughput = chart(
    "Throughput per second (fault windows shaded)",
    "",
    w,
    [
      { label: "acked/s", color: "#2a9d8f", values: w.map((x) => (x.acked * 1000) / windowMs) },
      { label: "delivered/s", color: "#264653", values: w.map((x) => (x.delivered * 1000) / windowMs) },
      { label: "publish errors/s", color: "#e63946", values: w.map((x) => (x.errors * 1000) / windowMs) },
    ],
    faults,
    windowMs,
  );
  const latency = chart(
    "Latency (ms) by publish time",
    "",
    w,
    [
      { label: "publish p50", color: "#8ab17d", values: w.map((x) => x.publishP50) },
      { label: "publish p99", color: "#e76f51", values: w.map((x) => x.publishP99) },
      { label: "publish-to-delivery p99", color: "#6a4c93", values: w.map((x) => x.e2eP99) },
    ],
    faults,
    windowMs,
  );
  const row = (cells: (string | number)[]) =>
    `<tr>${cells.map((c) => `<td>${esc(String(c))}</td>`).join("")}</tr>`;
  const c = r.check.counts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drill ${esc(r.drill.name)}: ${esc(r.outcome)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:820px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
.held{color:#2a9d8f;font-weight:bold}.violated,.aborted,.error,.not_steady{color:#e63946;font-weight:bold}
</style></head><body>
<h1>Drill ${esc(r.drill.name)}: <span class="${esc(r.outcome)}">${esc(r.outcome.toUpperCase())}</span></h1>
<p>${esc(r.drill.description)}</p>
<p>Target: ${esc(r.drill.target)}. Seed: <code>${esc(r.drill.seed)}</code>.${r.abortReason ? ` <b>Aborted:</b> ${esc(r.abortReason)}.` : ""}${r.error ? ` <b>Error:</b> ${esc(r.error)}.` : ""}</p>
${throughput}
${latency}
<h2>Invariants</h2><table><tr><th>invariant</th><th>held</th><th>count</th><th>detail</th></tr>
${r.check.verdicts.map((v) => row([v.invariant, v.held ? "yes" : "NO", v.count, v.detail])).join("\n")}</table>
<h2>Steady-state hypothesis</h2><table><tr><th>when</th><th>probe</th><th>value</th><th>tolerance</th><th>held</th></tr>
${[...r.hypothesis.before.map((p) => ["before", p] as const), ...r.hypothesis.after.map((p) => ["after", p] as const)].map(([when, p]) => row([when, p.name, String(p.value), p.tolerance, p.held ? "yes" : "NO"])).join("\n")}</table>
<h2>Faults</h2><table><tr><th>fault</th><th>action</th><th>status</th><th>recovery</th><th>detail</th></tr>
${r.faults
  .map((f) => {
    const rec = r.check.recoveries.find((x) => x.fault === f.name);
    return row([
      f.name,
      f.action,
      f.status,
      rec ? (rec.recoveryMs === null ? "not recovered" : `${rec.recoveryMs} ms`) : "",
      f.detail,
    ]);
  })
  .join("\n")}</table>
<h2>Counts</h2><table>
${Object.entries(c)
  .map(([k, v]) => row([k, v]))
  .join("\n")}</table>
</body></html>
`;
}
