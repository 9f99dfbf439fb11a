// The agent's page: a ticket in, the suggestion with its reasons out, and what the agent did back as feedback.
"use strict";

const VERDICTS = {
  escalate: "Escalate",
  resolve_first: "Try first-line fix first",
  uncertain: "Unsure: ask triage",
};

let form = null; // GET /v1/ticket-form: metadata fields and targets of the served model
let shown = null; // the answer on screen, and the ticket id it was asked for

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function addMessage(author = "", text = "") {
  const list = $("message-list");
  const n = list.children.length + 1;
  const item = el(
    "li",
    { class: "message" },
    el("label", { for: `message-${n}-author`, text: `Message ${n} author` }),
    el("input", { id: `message-${n}-author`, class: "author", autocomplete: "off", value: author }),
    el("label", { for: `message-${n}-text`, text: `Message ${n} text` }),
    el("textarea", { id: `message-${n}-text`, class: "text", rows: 2 }),
  );
  item.querySelector("textarea").value = text;
  list.append(item);
  return item;
}

async function loadForm() {
  try {
    form = await api("GET", "/v1/ticket-form");
  } catch (err) {
    form = null;
    if (err.status !== 401) showError(err.message);
    return;
  }
  const box = $("metadata-fields");
  if (!box.children.length) {
    for (const name of form.metadata) {
      const id = `meta-${name}`;
      box.append(el("p", { class: "field" }, el("label", { for: id, text: name }), el("input", { id, "data-field": name, autocomplete: "off" })));
    }
    $("metadata").hidden = form.metadata.length === 0;
  }
}

function ticket() {
  const messages = [...document.querySelectorAll("#message-list .message")]
    .map((m) => ({ author: m.querySelector(".author").value.trim(), text: m.querySelector(".text").value }))
    .filter((m) => m.text.trim());
  const metadata = {};
  for (const input of document.querySelectorAll("[data-field]")) {
    if (input.value.trim()) metadata[input.dataset.field] = input.value.trim();
  }
  const body = { subject: $("subject").value, body: $("body").value, messages, metadata };
  const id = $("ticket-id").value.trim();
  if (id) body.id = id;
  return body;
}

async function suggest(event) {
  event.preventDefault();
  showError("");
  const button = $("suggest");
  button.disabled = true;
  button.textContent = "Suggesting…";
  try {
    if (!form) await loadForm();
    const asked = ticket();
    const answer = await api("POST", "/v1/suggestions", asked);
    shown = { answer, ticketId: asked.id || null, text: [asked.subject, asked.body].filter(Boolean).join("\n\n") };
    render(answer);
  } catch (err) {
    showError(err.message); // the form keeps everything typed
  } finally {
    button.disabled = false;
    button.textContent = "Suggest";
  }
}

function render(answer) {
  const esc = answer.escalation;
  $("verdict").textContent = VERDICTS[esc.decision];
  $("verdict").className = `verdict ${esc.decision}`;
  const bar = $("probability-bar");
  bar.querySelector(".fill").style.width = percent(esc.probability);
  bar.querySelector(".mark").style.left = percent(esc.thresholds.escalate);
  const words = `Probability of escalation ${percent(esc.probability)}; escalate from ${percent(esc.thresholds.escalate)}, first-line fix below ${percent(esc.thresholds.resolve_first)}.`;
  bar.setAttribute("aria-label", words);
  $("probability-text").textContent = words;
  $("decision-rule").textContent = esc.rule ? `Decided by the rule “${esc.rule}”.` : "";
  const notes = answer.notes || [];
  $("notes").replaceChildren(...notes.map((n) => el("li", { text: n })));
  $("notes").hidden = !notes.length;

  const routing = answer.routing;
  $("routing").textContent =
    routing.decision === "route"
      ? `The top target is sure enough to route (${percent(routing.probability)}, needs ${percent(Math.min(routing.threshold, 1))}).`
      : `The top target is not sure enough to route on its own (${percent(routing.probability)}): check before sending.`;
  if (routing.precision !== null && routing.precision !== undefined && routing.threshold <= 1) {
    $("routing").textContent += ` ${routing.target}'s threshold keeps ${percent(routing.precision)} of routed answers right (set by ${routing.precision_set_by || "training"}).`;
  }
  const targets = $("targets");
  targets.replaceChildren();
  for (const s of answer.suggestions) {
    const button = el("button", { type: "button", class: "escalate-to", text: `Escalate to ${s.target}` });
    button.addEventListener("click", () => sendFeedback({ escalated: true, target: s.target, accepted_suggestion: true }));
    targets.append(
      el(
        "li",
        {},
        el("span", { class: "target", text: s.target }),
        el("span", { class: "kind", text: ` ${KINDS[s.kind] || s.kind}` }),
        el("span", { class: "p", text: ` ${percent(s.probability)}` }),
        s.rule ? el("span", { class: "small", text: ` (rule ${s.rule})` }) : "",
        " ",
        button,
      ),
    );
  }

  const rules = answer.explanation.rules || [];
  $("rules-block").hidden = rules.length === 0;
  $("rules").replaceChildren(
    ...rules.map((r) => el("li", { text: `${r.name}: ${r.action === "first" ? "puts" : "adds"} ${r.target} (${r.reason})` })),
  );

  const similar = $("similar");
  similar.replaceChildren();
  for (const t of answer.explanation.similar_tickets) {
    similar.append(
      el(
        "li",
        {},
        el("p", { class: "small", text: `${t.id} · ${percent(t.similarity)} similar · resolved by ${t.target} (${KINDS[t.kind] || t.kind})` }),
        el("p", { class: "snippet", text: t.snippet }),
        el("p", { class: "resolution", text: t.resolution ? `How: ${t.resolution}` : "No resolution text recorded." }),
      ),
    );
  }
  if (!answer.explanation.similar_tickets.length) similar.append(el("li", { text: "No similar resolved ticket." }));

  highlight(shown.text, answer.explanation.key_terms);
  $("handoff").textContent = answer.handoff ? answer.handoff.note : "";
  $("copy-status").textContent = "";

  const select = $("override-target");
  select.replaceChildren(...((form && form.targets) || []).map((t) => el("option", { value: t.target, text: `${t.target} (${KINDS[t.kind] || t.kind})` })));
  $("feedback-status").textContent = shown.ticketId ? "" : "Give a Ticket id (above) to record what you did.";
  $("answer").hidden = false;
}

function highlight(text, terms) {
  // Each key term's words, marked where they occur: towards escalation, against it, or towards the top target.
  const box = $("ticket-text");
  box.replaceChildren();
  const marks = [];
  for (const term of terms) {
    if (term.field !== "text") continue;
    const kind = term.towards !== "escalation" ? "target" : term.weight > 0 ? "for" : "against";
    for (const word of term.term.split(/\s+/)) if (word.length > 1) marks.push([word.toLowerCase(), kind]);
  }
  const pattern = marks.length
    ? new RegExp(`\\b(${marks.map(([w]) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})\\b`, "gi")
    : null;
  const kinds = new Map(marks.reverse());
  let last = 0;
  if (pattern) {
    for (const found of text.matchAll(pattern)) {
      box.append(text.slice(last, found.index));
      const kind = kinds.get(found[0].toLowerCase());
      box.append(el("mark", { class: kind, title: kind === "for" ? "towards escalation" : kind === "against" ? "against escalation" : "towards the top target", text: found[0] }));
      last = found.index + found[0].length;
    }
  }
  box.append(text.slice(last));
  const fields = terms.filter((t) => t.field !== "text");
  if (fields.length) {
    box.append(el("p", { class: "small", text: "Fields: " + fields.map((t) => `${t.field}=${t.term} (${t.towards === "escalation" ? (t.weight > 0 ? "towards" : "against") + " escalation" : "towards " + t.towards})`).join(", ") }));
  }
}

async function sendFeedback(choice) {
  const status = $("feedback-status");
  if (!shown || !shown.ticketId) {
    status.textContent = "Give a Ticket id (above) and ask again to record what you did.";
    return;
  }
  const payload = { ticket_id: shown.ticketId, ...choice };
  status.textContent = "Recording…";
  try {
    const stored = await api("POST", "/v1/feedback", payload);
    const what = choice.escalated ? `escalated to ${choice.target}` : "resolved first";
    const flags = stored.flags.includes("unknown_target") ? " (a target the model does not know yet)" : "";
    status.textContent = `Feedback recorded for ${stored.ticket_id}: ${what}${flags}.`;
  } catch (err) {
    status.textContent = err.message;
  }
}

async function copyHandoff() {
  const text = $("handoff").textContent;
  const status = $("copy-status");
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = "Copied.";
  } catch (err) {
    const range = document.createRange(); // no clipboard permission: select it for Ctrl+C
    range.selectNodeContents($("handoff"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    status.textContent = "Selected: press Ctrl+C to copy.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  rememberKey();
  addMessage();
  const linked = new URLSearchParams(window.location.search).get("ticket"); // from a helpdesk note's link
  if (linked) $("ticket-id").value = linked.slice(0, 200);
  $("add-message").addEventListener("click", () => addMessage().querySelector("input").focus());
  $("ticket-form").addEventListener("submit", suggest);
  $("copy").addEventListener("click", copyHandoff);
  $("resolve-first").addEventListener("click", () =>
    sendFeedback({ escalated: false, target: null, accepted_suggestion: shown && shown.answer.escalation.decision === "resolve_first" }),
  );
  $("override").addEventListener("click", () => {
    const target = $("override-target").value;
    const note = $("override-note").value.trim();
    if (target) sendFeedback({ escalated: true, target, accepted_suggestion: false, note: note || null });
  });
  if (keyField()) keyField().addEventListener("change", loadForm);
  loadForm();
});
