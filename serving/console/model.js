// The lead's view: the served version, its holdout numbers and what agents did with its suggestions.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADLINE = [
  ["escalation_average_precision", "escalation average precision"],
  ["escalation_roc_auc", "escalation ROC-AUC"],
  ["escalate_precision", "precision of “escalate”"],
  ["resolve_first_precision", "precision of “resolve first”"],
  ["uncertain_rate", "share left to triage"],
  ["target_top1_accuracy", "target top-1"],
  ["target_top3_accuracy", "target top-3"],
  ["target_macro_f1", "target macro-F1"],
  ["routing_coverage", "routed share of escalations"],
  ["routing_precision", "routed precision"],
];

const share = (v) => (v === null || v === undefined ? "–" : percent(v));
const cell = (text, numeric) => el("td", { class: numeric ? "num" : null, text: String(text) });

function row(...cells) {
  return el("tr", {}, ...cells);
}

async function show(event) {
  if (event) event.preventDefault();
  $("error").hidden = true;
  try {
    const model = await api("GET", "/v1/model");
    renderModel(model);
    const since = $("since").value ? `?since=${encodeURIComponent($("since").value + "T00:00:00Z")}` : "";
    renderSummary(await api("GET", "/v1/metrics/summary" + since));
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
  }
}

function renderModel(m) {
  $("version").textContent = `${m.name} version ${m.version} (alias ${m.alias}), trained on ${m.training.trained_rows ?? "?"} tickets; embeddings ${m.embedding_model}${m.runtime ? " on " + m.runtime : ""}.`;
  $("run-link").hidden = !m.mlflow_run_url;
  if (m.mlflow_run_url) $("run-url").href = m.mlflow_run_url;
  $("metrics").tBodies[0].replaceChildren(
    ...HEADLINE.filter(([k]) => k in m.metrics).map(([k, label]) => row(el("th", { scope: "row", text: label }), cell(m.metrics[k].toFixed(3), true))),
  );
  $("operating").textContent = `Escalate from P ≥ ${m.thresholds.escalate.toFixed(2)}; try a first-line fix below ${m.thresholds.resolve_first.toFixed(2)}; in between, triage. A target is routed when its probability clears its own threshold, chosen for ${percent(m.target_precision)} precision.`;
  const body = $("per-target").tBodies[0];
  body.replaceChildren();
  for (const t of m.targets) {
    const q = m.per_target[t.target] || {};
    const threshold = m.target_thresholds[t.target];
    body.append(
      row(
        el("th", { scope: "row", text: t.target }),
        cell(KINDS[t.kind] || t.kind),
        cell(share(q.precision), true),
        cell(share(q.recall), true),
        cell(q.support ?? "–", true),
        cell(share(q.routed_precision), true),
        cell(share(q.routed_coverage), true),
        cell(threshold === undefined || threshold > 1 ? "never routed" : threshold.toFixed(2), true),
      ),
    );
  }
  renderTradeoff(m.tradeoff || {});
  renderThemes(m.themes || []);
  renderRates(m.rates || []);
  $("served").hidden = false;
}

let TRADEOFF = {};

function renderTradeoff(tradeoff) {
  TRADEOFF = tradeoff;
  const targets = Object.keys(tradeoff);
  const body = $("tradeoff").tBodies[0];
  const routed = (a) => (a ? `${share(a.at_threshold.coverage)} of ${a.at_threshold.answers}` : "–");
  body.replaceChildren(
    ...targets.map((t) => {
      const e = tradeoff[t];
      return row(
        el("th", { scope: "row", text: t }),
        cell(share(e.precision), true),
        cell(e.set_by || "training"),
        cell(e.threshold > 1 ? "never routed" : e.threshold.toFixed(2), true),
        cell(routed(e.out_of_fold), true),
        cell(routed(e.holdout), true),
        cell(e.holdout ? share(e.holdout.at_threshold.precision) : "–", true),
      );
    }),
  );
  if (!targets.length) body.append(row(el("td", { colspan: 7, text: "This version was trained before the trade-off was kept." })));
  const select = $("tradeoff-target");
  select.replaceChildren(...targets.map((t) => el("option", { value: t, text: t })));
  select.onchange = () => drawTradeoff(select.value);
  $("tradeoff-figure").hidden = !targets.length;
  if (targets.length) drawTradeoff(targets[0]);
}

// Precision against coverage of one target: a line per set of answers, a dot where the threshold sits, the
// precision kept as a dashed line.
function drawTradeoff(target) {
  const e = TRADEOFF[target];
  const W = 640, H = 260, L = 44, R = 10, T = 10, B = 34;
  const x = (v) => L + v * (W - L - R);
  const y = (v) => T + (1 - v) * (H - T - B);
  const grid = [0, 0.25, 0.5, 0.75, 1].flatMap((v) => [
    svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#d0d0d0" }),
    svg("text", { x: 4, y: y(v) + 4, "font-size": 11 }, `${v * 100}%`),
    svg("text", { x: x(v), y: H - 18, "font-size": 11, "text-anchor": v ? (v === 1 ? "end" : "middle") : "start" }, `${v * 100}%`),
  ]);
  const label = svg("text", { x: (W + L) / 2, y: H - 4, "font-size": 11, "text-anchor": "middle" }, "coverage: share of its answers routed");
  const kept = svg("line", { x1: L, x2: W - R, y1: y(e.precision), y2: y(e.precision), stroke: "#555", "stroke-dasharray": "4 3", "data-series": "precision kept" });
  const sources = [["out_of_fold", "out of fold (chosen on)"], ["holdout", "holdout (checked on)"]].filter(([k]) => e[k] && e[k].curve.length);
  const lines = sources.map(([k, name], n) => {
    const colour = PALETTE[n % PALETTE.length];
    const points = e[k].curve.map((q) => `${x(q.coverage).toFixed(1)},${y(q.precision).toFixed(1)}`).join(" ");
    const at = e[k].at_threshold;
    const dot = at.precision === null ? [] : [svg("circle", { cx: x(at.coverage).toFixed(1), cy: y(at.precision).toFixed(1), r: 4, fill: colour })];
    return svg("g", {}, svg("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2, "data-series": name }), ...dot);
  });
  const where = sources.map(([k, name]) => {
    const at = e[k].at_threshold;
    return `${name}: ${share(at.coverage)} routed at ${share(at.precision)} precision`;
  });
  $("tradeoff-chart").replaceChildren(
    svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": `${target}: precision against coverage; threshold ${e.threshold > 1 ? "never routes" : e.threshold.toFixed(2)} keeps ${share(e.precision)}; ${where.join("; ")}` }, ...grid, label, kept, ...lines),
  );
  $("tradeoff-legend").replaceChildren(
    ...sources.map(([, name], n) => {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = PALETTE[n % PALETTE.length];
      return el("span", { class: "legend" }, swatch, name);
    }),
    el("span", { class: "legend", text: `dashed: precision kept (${share(e.precision)}, set by ${e.set_by || "training"}); dots: where the threshold sits` }),
  );
}

function renderThemes(themes) {
  const body = $("themes").tBodies[0];
  body.replaceChildren(
    ...themes.map((t) =>
      row(
        el("th", { scope: "row", text: t.name }),
        cell(t.tickets, true),
        cell(Object.entries(t.targets).map(([target, n]) => `${target} (${n})`).join(", ")),
        cell(share(t.repeatability), true),
        cell(t.resolution ?? "–"),
      ),
    ),
  );
  if (!themes.length) body.append(row(el("td", { colspan: 5, text: "No themes recorded for this version." })));
}

function renderSummary(s) {
  $("window").textContent = `Feedback from ${s.since.slice(0, 10)} to ${s.until.slice(0, 10)}.`;
  const body = $("versions").tBodies[0];
  const versions = Object.entries(s.versions);
  body.replaceChildren(
    ...versions.map(([v, n]) =>
      row(
        el("th", { scope: "row", text: v }),
        cell(n.suggestions, true),
        cell(n.feedback, true),
        cell(share(n.accepted_top1_rate), true),
        cell(share(n.accepted_top3_rate), true),
        cell(n.escalations_avoided, true),
        cell(share(n.escalation_rate), true),
      ),
    ),
  );
  if (!versions.length) body.append(row(el("td", { colspan: 7, text: "No suggestions recorded in this window yet." })));
  const weeks = s.weeks || [];
  const observed = new Map(weeks.filter((w) => w.observed_rate !== null).map((w) => [w.week, w.observed_rate]));
  const predicted = new Map(weeks.filter((w) => w.predicted_rate !== null).map((w) => [w.week, w.predicted_rate]));
  if (weeks.length) {
    const unfamiliar = new Map(weeks.filter((w) => w.unfamiliar_rate !== null && w.unfamiliar_rate !== undefined).map((w) => [w.week, w.unfamiliar_rate]));
    const series = new Map([["predicted escalation", predicted], ["observed escalation", observed]]);
    if (unfamiliar.size) series.set("unfamiliar tickets", unfamiliar); // versions trained before familiarity tell none
    lineChart($("live-chart"), $("live-legend"), weeks.map((w) => w.week), series);
  } else {
    $("live-chart").replaceChildren(el("p", { class: "small", text: "Nothing recorded in this window yet." }));
    $("live-legend").textContent = "";
  }
  $("per-target-acceptance").tBodies[0].replaceChildren(
    ...Object.entries(s.acceptance_per_target || {}).map(([t, a]) => row(el("th", { scope: "row", text: t }), cell(a.outcomes, true), cell(share(a.accepted_rate), true))),
  );
  $("acceptance").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  rememberKey();
  $("key-form").addEventListener("submit", show);
  show();
});

// Escalation per week as a small SVG line chart drawn here (no chart library, nothing from another origin).
const PALETTE = ["#1f4e79", "#b3541e", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#455a64"];
const SVG_NS = "http://www.w3.org/2000/svg";
let RATES = [];

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children);
  return node;
}

function renderRates(rates) {
  RATES = rates;
  const select = $("breakdown");
  const scopes = [...new Set(rates.map((r) => r.scope))];
  const label = (scope) => (scope === "all" ? "All tickets" : scope === "target" ? "Per target" : `Per ${scope}`);
  select.replaceChildren(...scopes.map((scope) => el("option", { value: scope, text: label(scope) })));
  select.onchange = () => drawRates(select.value);
  drawRates(scopes.length ? scopes[0] : "all");
}

function drawRates(scope) {
  const rows = RATES.filter((r) => r.scope === scope);
  if (!rows.length) {
    $("rates-chart").replaceChildren(el("p", { class: "small", text: "No weekly rates recorded for this version (its export has no creation dates)." }));
    $("rates-legend").textContent = "";
    return;
  }
  const series = new Map();
  for (const r of rows) {
    const name = r.value || "escalated";
    if (!series.has(name)) series.set(name, new Map());
    series.get(name).set(r.week, r.rate);
  }
  if (scope === "all") series.set("first-contact resolution", new Map(rows.map((r) => [r.week, 1 - r.rate])));
  lineChart($("rates-chart"), $("rates-legend"), [...new Set(RATES.map((r) => r.week))].sort(), series);
}

// A small SVG line chart of shares (0 to 100%) per week, with its legend and a spoken summary.
function lineChart(chart, legend, weeks, series) {
  const W = 640, H = 220, L = 40, R = 10, T = 10, B = 28;
  const x = (i) => L + (weeks.length > 1 ? (i * (W - L - R)) / (weeks.length - 1) : (W - L - R) / 2);
  const y = (v) => T + (1 - v) * (H - T - B);
  const grid = [0, 0.25, 0.5, 0.75, 1].map((v) =>
    svg("g", {}, svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#d0d0d0" }), svg("text", { x: 4, y: y(v) + 4, "font-size": 11 }, `${v * 100}%`)),
  );
  const names = [...series.keys()];
  const lines = names.map((name, n) => {
    const colour = PALETTE[n % PALETTE.length];
    const at = weeks.map((w, i) => (series.get(name).has(w) ? [x(i), y(series.get(name).get(w))] : null)).filter(Boolean);
    const points = at.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
    // a dot per week too, so a single week (a deployment's first) still shows
    const dots = at.map(([px, py]) => svg("circle", { cx: px.toFixed(1), cy: py.toFixed(1), r: 3, fill: colour }));
    return svg("g", {}, svg("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2, "data-series": name }), ...dots);
  });
  const ticks = [0, weeks.length - 1].filter((i, k, all) => all.indexOf(i) === k).map((i) => svg("text", { x: x(i), y: H - 8, "font-size": 11, "text-anchor": i ? "end" : "start" }, weeks[i]));
  const mean = (m) => [...m.values()].reduce((a, b) => a + b, 0) / m.size;
  const summary = names.map((name) => `${name}: ${series.get(name).size ? percent(mean(series.get(name))) + " on average" : "nothing recorded"}`).join("; ");
  chart.replaceChildren(
    svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": `Weekly share of tickets, ${weeks[0]} to ${weeks[weeks.length - 1]}: ${summary}` }, ...grid, ...lines, ...ticks),
  );
  legend.replaceChildren(
    ...names.map((name, n) => {
      const swatch = el("span", { class: "swatch" });
      swatch.style.background = PALETTE[n % PALETTE.length]; // through the CSSOM: the page's policy allows no inline style
      return el("span", { class: "legend" }, swatch, name);
    }),
  );
}
