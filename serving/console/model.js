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
        cell(threshold === undefined || threshold >= 1 ? "never routed" : threshold.toFixed(2), true),
      ),
    );
  }
  renderThemes(m.themes || []);
  $("served").hidden = false;
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
  $("acceptance").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  rememberKey();
  $("key-form").addEventListener("submit", show);
  show();
});
