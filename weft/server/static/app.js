// The weft chat page: POST /v1/chat and read its SSE events as they arrive (fetch, not
// EventSource, because the question goes in a POST body), with sse.js. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const log = $("log"), form = $("ask"), question = $("question"), send = $("send"), stop = $("stop");
const errorBox = $("error"), keyRow = $("key-row"), keyInput = $("api-key");

function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return "s-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}

let session = localStorage.getItem("weft.session") || newId();
localStorage.setItem("weft.session", session);
// Without API keys, the server binds a conversation to an owner token it issues with the first
// answer (the X-Weft-Owner header); without the token, the conversation cannot be read again.
let owner = localStorage.getItem("weft.owner") || "";
keyInput.value = localStorage.getItem("weft.apiKey") || "";
let running = null; // the AbortController of the answer being streamed

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = keyInput.value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  if (owner) h["X-Weft-Owner"] = owner;
  return h;
}

function keepOwner(response) {
  const issued = response.headers.get("X-Weft-Owner");
  if (issued) {
    owner = issued;
    localStorage.setItem("weft.owner", owner);
  }
}

function showSession() { $("session").textContent = "session " + session; }

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function clearError() { errorBox.hidden = true; errorBox.textContent = ""; }

// A readable message from an error response: the server always sends {"error": {...}}.
async function errorMessage(response) {
  let detail = "";
  try {
    const body = await response.json();
    const err = body.error || {};
    detail = err.message || "";
    if (err.fields && err.fields.length) {
      detail += " (" + err.fields.map((f) => f.field + ": " + f.message).join("; ") + ")";
    }
  } catch (_) { /* not JSON */ }
  if (response.status === 401) {
    keyRow.hidden = false;
    keyInput.focus();
    return "This server needs an API key. Enter it above and ask again." + (detail ? " (" + detail + ")" : "");
  }
  const retry = response.headers.get("Retry-After");
  const wait = retry ? " Try again in " + retry + " s." : "";
  return "Error " + response.status + ": " + (detail || response.statusText) + wait;
}

function addTurn(q) {
  $("hint")?.remove();
  const turn = el("section", "turn");
  turn.append(el("div", "question", q));
  const answer = el("div", "answer");
  turn.append(answer);
  log.append(turn);
  log.scrollTop = log.scrollHeight;
  return { turn, answer };
}

// Replace [n] in the answer with links to source n, once the answer is complete.
function renderCitations(answer, text, sources, turnId) {
  const known = new Set(sources.map((s) => s.index));
  answer.textContent = "";
  const parts = text.split(/(\[\d+\])/);
  for (const part of parts) {
    const m = /^\[(\d+)\]$/.exec(part);
    if (m && known.has(Number(m[1]))) {
      const a = el("a", "cite", part);
      a.href = "#" + turnId + "-src-" + m[1];
      answer.append(a);
    } else {
      answer.append(document.createTextNode(part));
    }
  }
}

// The sources an answer cites ([n] in its text), with their relevance as a share of the best
// one's score; before the answer is complete (text null) all of them.
function citedSources(sources, text) {
  if (text === null) return sources;
  const cited = new Set([...text.matchAll(/\[(\d+)\]/g)].map((m) => Number(m[1])));
  return sources.filter((s) => cited.has(s.index));
}

function relevance(s, sources) {
  const best = Math.max(...sources.map((x) => x.score ?? 0));
  if (!(best > 0) || s.score == null) return "";
  const share = Math.round((100 * s.score) / best);
  return share >= 90 ? "best match" : share >= 60 ? `strong match (${share}%)` : `weak match (${share}%)`;
}

function renderSources(turn, allSources, turnId, text = null) {
  turn.querySelector(".sources")?.remove();
  const sources = citedSources(allSources, text);
  if (!sources.length) return;
  const list = el("ol", "sources");
  for (const s of sources) {
    const li = el("li");
    li.value = s.index;
    li.id = turnId + "-src-" + s.index;
    li.append(el("span", "title", s.title || s.source || s.id));
    if (s.source && s.title) {
      const file = el("span", "file", " — " + s.source.split(/[\\/]/).pop());
      file.title = s.source;
      li.append(file);
    }
    const rel = relevance(s, allSources);
    if (rel) li.append(el("span", "relevance", " — " + rel));
    if (s.snippet) li.append(el("span", "snippet", s.snippet));
    list.append(li);
  }
  turn.append(list);
}

let turnCount = 0;

async function ask(q) {
  clearError();
  const { turn, answer } = addTurn(q);
  const turnId = "t" + (++turnCount);
  answer.classList.add("streaming");
  let text = "", sources = [];
  running = new AbortController();
  send.disabled = true;
  stop.hidden = false;
  try {
    const response = await fetch("/v1/chat", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ question: q, session_id: session }),
      signal: running.signal,
    });
    if (!response.ok) {
      turn.remove();
      showError(await errorMessage(response));
      question.value = q;
      return;
    }
    keepOwner(response);
    if (keyInput.value.trim()) localStorage.setItem("weft.apiKey", keyInput.value.trim());
    for await (const ev of sseEvents(response)) {
      if (ev.event === "token") {
        text += ev.data.text;
        answer.textContent = text;
        log.scrollTop = log.scrollHeight;
      } else if (ev.event === "sources") {
        sources = ev.data.sources || [];
        renderSources(turn, sources, turnId);
      } else if (ev.event === "usage") {
        const u = ev.data.usage || {};
        if (u.total_tokens !== undefined) {
          turn.querySelector(".usage")?.remove();
          turn.append(el("div", "usage", `${u.input_tokens ?? "?"} tokens in, ${u.output_tokens ?? "?"} out${u.estimated ? " (estimated)" : ""}`));
        }
      } else if (ev.event === "done") {
        text = ev.data.answer ?? text;
        sources = ev.data.sources || sources;
        renderSources(turn, sources, turnId, text);
        renderCitations(answer, text, sources, turnId);
      } else if (ev.event === "error") {
        const err = ev.data.error || {};
        showError("The answer failed: " + (err.message || "unknown error"));
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      answer.append(el("em", "usage", " (stopped)"));
    } else {
      showError("Could not reach the server: " + err.message);
    }
  } finally {
    answer.classList.remove("streaming");
    running = null;
    send.disabled = false;
    stop.hidden = true;
    question.focus();
  }
}

async function loadHistory() {
  try {
    const response = await fetch("/v1/chat/sessions/" + encodeURIComponent(session), { headers: headers() });
    if (!response.ok) return;
    const history = (await response.json()).history || [];
    for (let i = 0; i + 1 < history.length; i += 2) {
      if (history[i].role !== "user") continue;
      const { answer } = addTurn(history[i].content);
      answer.textContent = history[i + 1].content;
    }
  } catch (_) { /* no history shown */ }
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const q = question.value.trim();
  if (!q || running) return;
  question.value = "";
  ask(q);
});

question.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    form.requestSubmit();
  }
});

stop.addEventListener("click", () => running && running.abort());

$("new-chat").addEventListener("click", () => {
  if (running) running.abort();
  session = newId();
  localStorage.setItem("weft.session", session);
  log.textContent = "";
  clearError();
  showSession();
  question.focus();
});

showSession();
loadHistory();
question.focus();
