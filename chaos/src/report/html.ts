import type { Recovery, Window } from "../checker.js";
import type { DrillReport } from "../drill/run.js";
import { brokerShare } from "./markdown.js";

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

const fmt = (v: number | null | undefined) => (v === null || v === undefined ? "n/a" : `${Math.round(v)} ms`);

/**
 * One fault's timeline: the fault window, each polled group's leaderless gaps and new leader, the
 * first ack and the first effect of an event published after the fault started.
 */
function timeline(rec: Recovery): string {
  const W = 760;
  const L = 190;
  const rowH = 18;
  // Short row labels (the full group name is in each row's tooltip).
  const short = (group: string) => {
    const text = group.startsWith("consumer:")
      ? `durable on ${group.slice(9).split("/")[0]}`
      : group.replace(":", " ");
    return text.length > 30 ? `${text.slice(0, 29)}…` : text;
  };
  const rows = [
    { label: `fault ${rec.fault}`, title: rec.fault },
    ...rec.leadership.map((l) => ({ label: short(l.group), title: l.group })),
    { label: "workload", title: "first ack and first effect of an event published after the fault started" },
  ];
  const H = 30 + rows.length * rowH + 24;
  const ends = [
    rec.endedAt - rec.startedAt,
    ...rec.timeline.map((x) => x.atMs),
    ...rec.leadership.flatMap((l) => l.gaps.map((g) => g.toMs ?? g.fromMs)),
  ];
  // Steps before the fault took effect (a store outage moves leaders first) sit left of zero.
  const lo = Math.min(-500, ...rec.timeline.map((t) => t.atMs - 200));
  const hi = Math.max(1000, ...ends) * 1.1;
  const span = hi - lo;
  const x = (ms: number) => L + ((ms - lo) / span) * (W - L - 10);
  const y = (row: number) => 24 + row * rowH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="timeline of ${esc(rec.fault)}">`,
    `<text x="4" y="14" font-size="13" font-weight="bold">Timeline of ${esc(rec.fault)} (ms from the fault's start)</text>`,
  ];
  rows.forEach((r, i) => {
    parts.push(
      `<text x="4" y="${y(i) + 12}" font-size="11">${esc(r.label)}<title>${esc(r.title)}</title></text>`,
    );
    parts.push(
      `<line x1="${L}" y1="${y(i) + rowH / 2}" x2="${W - 10}" y2="${y(i) + rowH / 2}" stroke="#ddd"/>`,
    );
  });
  const faultTo = Math.max(rec.endedAt - rec.startedAt, 150);
  parts.push(
    `<rect x="${x(0).toFixed(1)}" y="${y(0) + 2}" width="${(x(faultTo) - x(0)).toFixed(1)}" height="${rowH - 4}" fill="#f4a261"><title>fault ${esc(rec.fault)}: ${rec.endedAt - rec.startedAt} ms</title></rect>`,
  );
  rec.leadership.forEach((l, i) => {
    for (const g of l.gaps) {
      const to = g.toMs ?? hi;
      parts.push(
        `<rect x="${x(g.fromMs).toFixed(1)}" y="${y(i + 1) + 2}" width="${Math.max(2, x(to) - x(g.fromMs)).toFixed(1)}" height="${rowH - 4}" fill="#6c757d"><title>${esc(l.group)}: no leader from +${g.fromMs} ms to ${g.toMs === null ? "the end" : `+${g.toMs} ms`}</title></rect>`,
      );
    }
    if (l.newLeader) {
      const cx = x(l.newLeader.atMs);
      const cy = y(i + 1) + rowH / 2;
      parts.push(
        `<path d="M${cx.toFixed(1)},${cy - 6} L${(cx + 6).toFixed(1)},${cy} L${cx.toFixed(1)},${cy + 6} Z" fill="#2a9d8f"><title>${esc(l.group)}: new leader ${esc(l.newLeader.leader)} at +${l.newLeader.atMs} ms</title></path>`,
      );
    }
  });
  const wl = y(rows.length - 1);
  const mark = (ms: number | null, color: string, label: string) => {
    if (ms === null) return;
    parts.push(
      `<line x1="${x(ms).toFixed(1)}" y1="${wl}" x2="${x(ms).toFixed(1)}" y2="${wl + rowH}" stroke="${color}" stroke-width="3"><title>${esc(label)} at +${ms} ms</title></line>`,
    );
  };
  mark(rec.firstAckMs, "#264653", "first ack after the fault started");
  mark(rec.recoveryMs, "#6a4c93", "first effect after the fault started (recovery)");
  parts.push(`<line x1="${x(0)}" y1="20" x2="${x(0)}" y2="${H - 20}" stroke="#333" stroke-dasharray="3,3"/>`);
  for (let t = 0; t <= hi; t += Math.max(500, Math.ceil(span / 8 / 500) * 500)) {
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${H - 6}" font-size="10" text-anchor="middle">+${(t / 1000).toFixed(1)}s</text>`,
    );
  }
  parts.push(
    `<text x="${W - 10}" y="14" font-size="10" text-anchor="end"><tspan fill="#6c757d">■ no leader</tspan> <tspan fill="#2a9d8f">▶ new leader</tspan> <tspan fill="#264653">| first ack</tspan> <tspan fill="#6a4c93">| first effect</tspan></text>`,
  );
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
      { label: "effected/s", color: "#6a4c93", values: w.map((x) => (x.effected * 1000) / windowMs) },
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
<h2>Faults</h2><p>Recovery is end to end: from the fault's start to the first effect of an event first published after the fault started; the broker's share is the time until every polled Raft group (workload stream, durable, idempotency store) had a leader again, the SDKs' share the rest.</p>
<table><tr><th>fault</th><th>action</th><th>status</th><th>recovery</th><th>broker: leader back</th><th>SDKs' share</th><th>steady after end</th><th>detail</th></tr>
${r.faults
  .map((f) => {
    const rec = r.check.recoveries.find((x) => x.fault === f.name);
    return row([
      f.name,
      f.action,
      f.status,
      rec ? (rec.recoveryMs === null ? "not recovered" : fmt(rec.recoveryMs)) : "",
      rec ? brokerShare(rec) : "",
      rec ? fmt(rec.sdkShareMs) : "",
      rec ? fmt(rec.steadyAfterEndMs) : "",
      f.detail,
    ]);
  })
  .join("\n")}</table>
${r.check.recoveries
  .map(
    (rec) =>
      `${timeline(rec)}\n<table><tr><th>at</th><th>what</th></tr>${rec.timeline.map((t) => row([`${t.atMs >= 0 ? "+" : ""}${fmt(t.atMs)}`, t.what])).join("")}</table>`,
  )
  .join("\n")}
<h2>Findings: every non-zero count explained</h2>
${
  r.check.findings.length === 0
    ? "<p>none</p>"
    : `<ul>${r.check.findings
        .map(
          (f) =>
            `<li><b>${esc(f.count)}</b> (${f.n}): ${esc(f.text)}${f.examples.length > 0 ? `<br><code>${esc(JSON.stringify(f.examples.slice(0, 3)))}</code>` : ""}</li>`,
        )
        .join("\n")}</ul>`
}
<h2>Counts</h2><table>
${Object.entries(c)
  .map(([k, v]) => row([k, v]))
  .join("\n")}</table>
</body></html>
`;
}
