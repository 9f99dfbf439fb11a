// What both console pages share: the API key for this tab, calls to the API and errors in plain words.
"use strict";

const KEY_STORE = "escalation-api-key"; // sessionStorage: this tab only, never a cookie or the address

function keyField() {
  return document.getElementById("api-key");
}

function rememberKey() {
  const field = keyField();
  if (!field) return;
  field.value = sessionStorage.getItem(KEY_STORE) || "";
  field.addEventListener("change", () => sessionStorage.setItem(KEY_STORE, field.value.trim()));
}

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function inWords(seconds) {
  const n = Number(seconds);
  if (!Number.isFinite(n) || n <= 0) return "in a moment";
  if (n < 90) return `in ${Math.round(n)} seconds`;
  return `in ${Math.round(n / 60)} minutes`;
}

function fieldOf(loc) {
  // ["body", "metadata", "channel"] -> "metadata.channel"; the leading "body" is FastAPI's, not the agent's field
  const parts = (loc || []).filter((p, i) => !(i === 0 && p === "body"));
  return parts.join(".") || "the request";
}

function explain(status, body, retryAfter) {
  const detail = body && body.detail;
  if (status === 401) return "The API key was not accepted: check it (or ask an admin for one).";
  if (status === 403) return "This API key's role may not do that.";
  if (status === 413) return "The ticket is too long to send.";
  if (status === 422 && Array.isArray(detail) && detail.length) {
    return "Please check " + detail.map((d) => `${fieldOf(d.loc)}: ${d.msg}`).join("; ") + ".";
  }
  if (status === 503 && detail === "no model loaded") {
    return "No model is loaded yet, so there is no suggestion. Try again once a model has been trained and served.";
  }
  if (status === 503 && retryAfter !== null) {
    return `The feedback store is down, so this was not recorded. Try again ${inWords(retryAfter)}.`;
  }
  if (status === 429) return `Too many requests. Try again ${inWords(retryAfter)}.`;
  return typeof detail === "string" ? `The service said: ${detail}` : `The service answered ${status}.`;
}

async function api(method, path, payload) {
  const headers = { Accept: "application/json" };
  const field = keyField();
  if (field && field.value.trim()) {
    sessionStorage.setItem(KEY_STORE, field.value.trim());
    headers.Authorization = "Bearer " + field.value.trim();
  }
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError("The connection to the service was lost. Nothing you typed is lost: try again.", 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(explain(response.status, body, response.headers.get("Retry-After")), response.status);
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

function percent(p) {
  return `${Math.round(p * 100)}%`;
}

const KINDS = { functional: "specialist team", hierarchical: "manager", first_line: "first line" };
