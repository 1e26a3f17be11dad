/**
 * Self-contained HTML reports (inline CSS and SVG, no scripts, no external assets): a job's score, per-metric
 * scores, score and latency distributions, errors grouped by type, failed and slowest examples; and the
 * comparison of several jobs on one dataset.
 */
import { isPackagedProgram, isPipelineProgram, type ExampleResult, type JobRecord, type JobSummary } from "./types.js";
import type { Comparison } from "./compare.js";
import { summarize } from "./summary.js";

export interface ReportInput {
  record: JobRecord;
  results: ReadonlyMap<number, ExampleResult>;
  /** The dataset, to show the inputs of failed and slowest examples. */
  dataset?: ReadonlyArray<Record<string, unknown>>;
  /** Rows in the slowest-examples table (default 10). */
  slowest?: number;
  /** Rows in the all-examples table (default 500). */
  maxRows?: number;
  generatedAt?: Date;
}

export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function short(value: unknown, max = 140): string {
  const text = typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function fields(obj: Record<string, unknown> | undefined, max = 140): string {
  if (!obj) return "";
  return Object.entries(obj)
    .map(([k, v]) => `<div class="kv"><span class="k">${esc(k)}</span> ${esc(short(v, max))}</div>`)
    .join("");
}

function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return "—";
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

function fmtScore(s: number | null | undefined): string {
  return s === null || s === undefined ? "—" : s.toFixed(2);
}

function fmtTime(t: number | undefined): string {
  return t === undefined ? "—" : new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

interface Bar {
  label: string;
  count: number;
  cls?: string;
}

/** A bar chart as inline SVG. */
export function barChart(
  bars: Bar[],
  options: { title: string; width?: number; height?: number; xLabel?: string; max?: number },
): string {
  const width = options.width ?? 640;
  const height = options.height ?? 220;
  const pad = { top: 24, right: 12, bottom: 44, left: 44 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = options.max ?? Math.max(1, ...bars.map((b) => b.count));
  const slot = plotW / Math.max(1, bars.length);
  const barW = Math.max(2, slot * 0.78);
  const ticks = 4;
  const parts: string[] = [];
  parts.push(`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(options.title)}" xmlns="http://www.w3.org/2000/svg">`);
  parts.push(`<title>${esc(options.title)}</title>`);
  for (let i = 0; i <= ticks; i++) {
    const v = Math.round((max * i) / ticks);
    const y = pad.top + plotH - (plotH * v) / max;
    parts.push(`<line x1="${pad.left}" x2="${width - pad.right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" class="grid"/>`);
    parts.push(`<text x="${pad.left - 6}" y="${(y + 4).toFixed(1)}" class="tick" text-anchor="end">${v}</text>`);
  }
  const labelEvery = Math.ceil(bars.length / 12);
  bars.forEach((b, i) => {
    const h = (plotH * b.count) / max;
    const x = pad.left + i * slot + (slot - barW) / 2;
    const y = pad.top + plotH - h;
    parts.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" class="bar ${b.cls ?? ""}"><title>${esc(b.label)}: ${b.count}</title></rect>`);
    if (b.count > 0 && bars.length <= 24) {
      parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" class="count" text-anchor="middle">${b.count}</text>`);
    }
    if (i % labelEvery === 0) {
      parts.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${pad.top + plotH + 16}" class="tick" text-anchor="middle">${esc(b.label)}</text>`);
    }
  });
  parts.push(`<line x1="${pad.left}" x2="${width - pad.right}" y1="${pad.top + plotH}" y2="${pad.top + plotH}" class="axis"/>`);
  if (options.xLabel) {
    parts.push(`<text x="${pad.left + plotW / 2}" y="${height - 8}" class="axis-label" text-anchor="middle">${esc(options.xLabel)}</text>`);
  }
  parts.push("</svg>");
  return parts.join("");
}

/** Score distribution bars: right/wrong for a 0/1 metric, ten bins otherwise; failed examples apart. */
export function scoreBars(results: readonly ExampleResult[]): Bar[] {
  const ok = results.filter((r) => r.ok);
  const failed = results.length - ok.length;
  const binary = ok.every((r) => r.score === 0 || r.score === 1);
  const bars: Bar[] = [];
  if (binary) {
    bars.push({ label: "0 (miss)", count: ok.filter((r) => r.score === 0).length, cls: "miss" });
    bars.push({ label: "1 (hit)", count: ok.filter((r) => r.score === 1).length, cls: "hit" });
  } else {
    const lo = Math.min(0, ...ok.map((r) => r.score));
    const hi = Math.max(1, ...ok.map((r) => r.score));
    const bins = 10;
    const width = (hi - lo) / bins;
    const counts = new Array<number>(bins).fill(0);
    for (const r of ok) counts[Math.min(bins - 1, Math.floor((r.score - lo) / width))]!++;
    counts.forEach((c, i) => bars.push({ label: `${(lo + i * width).toFixed(1)}–${(lo + (i + 1) * width).toFixed(1)}`, count: c, cls: "hit" }));
  }
  bars.push({ label: "failed", count: failed, cls: "fail" });
  return bars;
}

function latencyBars(results: readonly ExampleResult[]): Bar[] {
  if (results.length === 0) return [];
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  const top = ms[Math.min(ms.length - 1, Math.ceil(0.99 * ms.length) - 1)]! || 1;
  const bins = 20;
  const width = top / bins;
  const counts = new Array<number>(bins + 1).fill(0);
  for (const v of ms) counts[v > top ? bins : Math.min(bins - 1, Math.floor(v / width))]!++;
  const bars = counts.slice(0, bins).map((c, i) => ({ label: fmtMs(i * width), count: c, cls: "lat" }));
  if (counts[bins]! > 0) bars.push({ label: `>${fmtMs(top)}`, count: counts[bins]!, cls: "fail" });
  return bars;
}

const CSS = `
:root{--fg:#1d2330;--muted:#5d6678;--line:#e3e6ec;--bg:#f6f7f9;--card:#fff;--hit:#2e9d62;--miss:#9aa3b2;--fail:#d2483f;--lat:#4b7bd8;--accent:#3a5bd9}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:28px 24px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 12px}.sub{color:var(--muted);margin:0 0 20px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;margin:0 0 18px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px}.card .v{font-size:22px;font-weight:600;white-space:nowrap}.card .v.small{font-size:18px;line-height:30px}.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.score .v{font-size:34px;color:var(--accent)}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;vertical-align:middle;background:#e8ebf2}
.badge.completed{background:#dff3e7;color:#1f6e43}.badge.failed{background:#fbe3e1;color:#9c2c25}.badge.cancelled{background:#fff1d6;color:#8a5a00}.badge.running,.badge.queued{background:#e3ebff;color:#2b47a8}
table{width:100%;border-collapse:collapse;font-size:13px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em}tbody tr:nth-child(even){background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.mono{white-space:nowrap}.kv{margin:0 0 2px;word-break:break-word}.k{color:var(--muted);font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}.err{color:#9c2c25}.muted{color:var(--muted)}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;word-break:break-word}
svg.chart{max-width:100%;height:auto}svg .grid{stroke:#eceef3}svg .axis{stroke:#9aa3b2}svg .tick{font-size:11px;fill:#5d6678}svg .count{font-size:11px;fill:#1d2330}svg .axis-label{font-size:12px;fill:#5d6678}
svg .bar{fill:var(--hit)}svg .bar.miss{fill:var(--miss)}svg .bar.fail{fill:var(--fail)}svg .bar.lat{fill:var(--lat)}
.win{color:var(--hit);font-weight:600}.loss{color:var(--fail);font-weight:600}details summary{cursor:pointer;color:var(--accent)}
.none{color:var(--muted);font-style:italic}
`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><main>
${body}
</main></body></html>
`;
}

function programLabel(record: JobRecord): string {
  const p = record.spec.program;
  if (isPackagedProgram(p)) return `packaged program ${esc(p.package)}`;
  if (isPipelineProgram(p)) return `pipeline${p.pipeline.name ? ` “${esc(p.pipeline.name)}”` : ""} (${p.pipeline.steps.length} steps)`;
  const sig = typeof p.signature === "string" ? p.signature : `${p.signature.inputs.map((f) => f.name).join(", ")} -> ${p.signature.outputs.map((f) => f.name).join(", ")}`;
  return `${esc(p.module ?? "predict")} <code>${esc(sig)}</code>${p.lm ? ` on <code>${esc(p.lm.model)}</code>` : ""}`;
}

function summaryCards(s: JobSummary): string {
  const cards = [
    `<div class="card score"><div class="l">score (${esc(s.primary_metric)})</div><div class="v">${fmtScore(s.score)}</div></div>`,
    `<div class="card"><div class="l">examples</div><div class="v">${s.done} / ${s.total}</div></div>`,
    `<div class="card"><div class="l">failed</div><div class="v ${s.failed ? "err" : ""}">${s.failed}</div></div>`,
    `<div class="card"><div class="l">throughput</div><div class="v">${s.rate === undefined ? "—" : `${s.rate.toFixed(1)}/s`}</div></div>`,
    `<div class="card"><div class="l">latency p50 / p90</div><div class="v small">${s.latency_ms ? `${fmtMs(s.latency_ms.p50)} / ${fmtMs(s.latency_ms.p90)}` : "—"}</div></div>`,
    `<div class="card"><div class="l">tokens</div><div class="v">${s.usage.total_tokens.toLocaleString("en-US")}</div></div>`,
  ];
  return `<div class="cards">${cards.join("")}</div>`;
}

/** The HTML report of one job. */
export function renderReport(input: ReportInput): string {
  const { record, dataset } = input;
  const summary = summarize(record, input.results);
  const results = [...input.results.values()].sort((a, b) => a.index - b.index);
  const failed = results.filter((r) => !r.ok);
  const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, input.slowest ?? 10);
  const inputsOf = (i: number) => (dataset ? dataset[i] : undefined);
  const title = `DSPex evaluation ${record.spec.name ? `“${record.spec.name}” ` : ""}${record.id}`;

  const header = `<h1>${esc(title)} <span class="badge ${esc(record.status)}">${esc(record.status)}</span></h1>
<p class="sub">${programLabel(record)} · ${record.total} examples · generated ${esc(fmtTime((input.generatedAt ?? new Date()).getTime()))}</p>`;

  const metricsRows = Object.entries(summary.metrics)
    .map(([k, v]) => `<tr><td><code>${esc(k)}</code>${k === summary.primary_metric ? ' <span class="badge">primary</span>' : ""}</td><td class="num">${fmtScore(v)}</td></tr>`)
    .join("");
  const meta = `<dl class="meta">
<dt>job</dt><dd class="mono">${esc(record.id)}</dd>
<dt>dataset</dt><dd class="mono">sha256 ${esc(record.dataset_hash.slice(0, 16))}…</dd>
<dt>started</dt><dd>${esc(fmtTime(record.started_at))}</dd>
<dt>finished</dt><dd>${esc(fmtTime(record.finished_at))}</dd>
<dt>runs</dt><dd>${record.runs}${record.runs > 1 ? " (resumed)" : ""}</dd>
<dt>concurrency</dt><dd>${record.spec.concurrency ?? 8}</dd>
${record.error ? `<dt>stopped</dt><dd class="err">${esc(record.error.type)}: ${esc(record.error.message)}</dd>` : ""}
</dl>`;

  const summarySection = `<section id="summary"><h2>Summary</h2>${summaryCards(summary)}
<div class="grid2" style="margin-top:16px"><div><table><thead><tr><th>metric</th><th class="num">score</th></tr></thead><tbody>${metricsRows}</tbody></table>
<p class="muted" style="margin:8px 0 0;font-size:12px">Scores are DSPy's <code>round(100 × sum / n, 2)</code>; a failed example scores 0.</p></div>${meta}</div></section>`;

  const distribution = `<section id="distribution"><h2>Distribution</h2><div class="grid2">
<div>${barChart(scoreBars(results), { title: `Per-example ${summary.primary_metric}`, xLabel: `per-example ${summary.primary_metric}`, width: 540 })}</div>
<div>${results.length ? barChart(latencyBars(results), { title: "Latency per example", xLabel: "latency per example (retries included)", width: 540 }) : '<p class="none">no results</p>'}</div>
</div></section>`;

  const groups = new Map<string, ExampleResult[]>();
  for (const r of failed) {
    const t = r.error?.type ?? "Error";
    groups.set(t, [...(groups.get(t) ?? []), r]);
  }
  const errorRows = [...groups.entries()]
    .sort((a, b) => b[1].length - a[1].length)
    .map(
      ([type, rs]) =>
        `<tr><td><code class="err">${esc(type)}</code></td><td class="num">${rs.length}</td><td>${esc(short(rs[0]!.error?.message, 220))}</td><td class="mono">${esc(
          rs
            .slice(0, 12)
            .map((r) => r.index)
            .join(", ") + (rs.length > 12 ? ", …" : ""),
        )}</td></tr>`,
    )
    .join("");
  const errorsSection = `<section id="errors"><h2>Errors by type</h2>${
    groups.size ? `<table><thead><tr><th>type</th><th class="num">count</th><th>first message</th><th>examples</th></tr></thead><tbody>${errorRows}</tbody></table>` : '<p class="none">no failed examples</p>'
  }</section>`;

  const failedRows = failed
    .slice(0, 200)
    .map(
      (r) =>
        `<tr><td class="num">${r.index}</td><td><code class="err">${esc(r.error?.type ?? "Error")}</code></td><td>${esc(short(r.error?.message, 300))}</td><td>${fields(inputsOf(r.index))}</td><td class="num">${r.attempts}</td><td class="num">${fmtMs(r.ms)}</td></tr>`,
    )
    .join("");
  const failedSection = `<section id="failed"><h2>Failed examples (${failed.length})</h2>${
    failed.length
      ? `<table><thead><tr><th class="num">#</th><th>error</th><th>message</th><th>example</th><th class="num">attempts</th><th class="num">time</th></tr></thead><tbody>${failedRows}</tbody></table>${failed.length > 200 ? `<p class="muted">first 200 of ${failed.length}</p>` : ""}`
      : '<p class="none">none</p>'
  }</section>`;

  const slowRows = slowest
    .map(
      (r) =>
        `<tr><td class="num">${r.index}</td><td class="num">${fmtMs(r.ms)}</td><td class="num">${r.attempts}</td><td class="mono">${esc(r.worker ?? "")}</td><td>${fields(inputsOf(r.index))}</td><td>${r.ok ? fields(r.outputs) : `<span class="err">${esc(r.error?.type ?? "")}</span>`}</td><td class="num">${r.ok ? esc(String(r.score)) : "—"}</td></tr>`,
    )
    .join("");
  const slowSection = `<section id="slowest"><h2>Slowest examples</h2>${
    slowest.length
      ? `<table><thead><tr><th class="num">#</th><th class="num">time</th><th class="num">attempts</th><th>worker</th><th>example</th><th>prediction</th><th class="num">score</th></tr></thead><tbody>${slowRows}</tbody></table>`
      : '<p class="none">no results</p>'
  }</section>`;

  const maxRows = input.maxRows ?? 500;
  const keys = Object.keys(summary.metrics);
  const allRows = results
    .slice(0, maxRows)
    .map(
      (r) =>
        `<tr><td class="num">${r.index}</td><td>${fields(inputsOf(r.index), 80)}</td><td>${r.ok ? fields(r.outputs, 80) : `<span class="err">${esc(r.error?.type ?? "")}: ${esc(short(r.error?.message, 80))}</span>`}</td>${keys
          .map((k) => `<td class="num">${r.ok ? esc(String(r.scores[k] ?? "")) : "—"}</td>`)
          .join("")}<td class="num">${fmtMs(r.ms)}</td></tr>`,
    )
    .join("");
  const allSection = `<section id="examples"><details><summary>All examples (${results.length}${results.length > maxRows ? `, first ${maxRows} shown` : ""})</summary>
<table style="margin-top:10px"><thead><tr><th class="num">#</th><th>example</th><th>prediction</th>${keys.map((k) => `<th class="num">${esc(k)}</th>`).join("")}<th class="num">time</th></tr></thead><tbody>${allRows}</tbody></table></details></section>`;

  return page(title, [header, summarySection, distribution, errorsSection, failedSection, slowSection, allSection].join("\n"));
}

/** The HTML report of a comparison of jobs on one dataset. */
export function renderComparisonReport(c: Comparison, options: { generatedAt?: Date; maxChanged?: number } = {}): string {
  const title = `DSPex comparison of ${c.jobs.length} jobs`;
  const jobRows = c.jobs
    .map(
      (s) =>
        `<tr><td class="mono">${esc(s.job)}</td><td>${esc(s.name ?? "")}</td><td><span class="badge ${esc(s.status)}">${esc(s.status)}</span></td><td class="num"><b>${fmtScore(s.score)}</b></td><td class="num">${s.ok}</td><td class="num">${s.failed}</td><td class="num">${s.latency_ms ? fmtMs(s.latency_ms.p50) : "—"}</td></tr>`,
    )
    .join("");
  const pairRows = c.pairs
    .map(
      (p) =>
        `<tr><td class="mono">${esc(p.b)}</td><td class="mono">${esc(p.a)}</td><td class="num win">${p.wins}</td><td class="num loss">${p.losses}</td><td class="num">${p.ties}</td><td class="num">${p.missing}</td><td class="num">${p.delta === null ? "—" : `${p.delta >= 0 ? "+" : ""}${p.delta.toFixed(2)}`}</td></tr>`,
    )
    .join("");
  const chart = barChart(
    c.jobs.map((s) => ({ label: s.name ?? s.job.slice(-8), count: Math.round((s.score ?? 0) * 100) / 100, cls: "lat" })),
    { title: "Score per job", xLabel: "score per job (0–100)", width: 540, max: 100 },
  );
  const maxChanged = options.maxChanged ?? 200;
  const changedRows = c.perExample
    .filter((row) => new Set(row.scores.map((s) => String(s))).size > 1)
    .slice(0, maxChanged)
    .map((row) => {
      const base = row.scores[0];
      const cells = row.scores.map((s, i) => {
        const cls = i === 0 || s === null || base === null || base === undefined ? "" : s > base ? " win" : s < base ? " loss" : "";
        return `<td class="num${cls}">${s === null ? "—" : esc(String(s))}</td>`;
      });
      return `<tr><td class="num">${row.index}</td>${cells.join("")}</tr>`;
    })
    .join("");
  const body = `<h1>${esc(title)}</h1><p class="sub">same dataset (sha256 <span class="mono">${esc(c.dataset_hash.slice(0, 16))}…</span>), ${c.total} examples · generated ${esc(fmtTime((options.generatedAt ?? new Date()).getTime()))}</p>
<section id="comparison"><h2>Jobs</h2><div class="grid2"><div><table><thead><tr><th>job</th><th>name</th><th>status</th><th class="num">score</th><th class="num">ok</th><th class="num">failed</th><th class="num">p50</th></tr></thead><tbody>${jobRows}</tbody></table></div><div>${chart}</div></div></section>
<section id="pairs"><h2>Per-example wins, losses and ties</h2><table><thead><tr><th>job</th><th>against</th><th class="num">wins</th><th class="num">losses</th><th class="num">ties</th><th class="num">missing</th><th class="num">Δ score</th></tr></thead><tbody>${pairRows}</tbody></table></section>
<section id="changed"><h2>Examples that differ</h2><p class="muted" style="margin:0 0 8px">Primary-metric score per example; green is better and red worse than the first job.</p>${
    changedRows
      ? `<table><thead><tr><th class="num">#</th>${c.jobs.map((s) => `<th class="num">${esc(s.name ?? s.job)}</th>`).join("")}</tr></thead><tbody>${changedRows}</tbody></table>`
      : '<p class="none">every example scored the same in every job</p>'
  }</section>`;
  return page(title, body);
}
