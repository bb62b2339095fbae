"use strict";
// The health consultation page: streams POST /v1/graphs/health/stream and shows the triage
// level (highlighted) as soon as the triage node finishes, then the report and the saga.

const LEVELS = {
  emergency: "EMERGENCY", non_emergency: "SEE A DOCTOR", self_care: "SELF-CARE",
};
const out = document.getElementById("out");
const errorBox = document.getElementById("error");

function showTriage(t) {
  const box = el("div", "level " + t.triage);
  box.appendChild(el("b", "", LEVELS[t.triage] || t.triage));
  box.appendChild(el("span", "", t.instruction));
  const reasons = el("ul");
  for (const r of t.reasons) reasons.appendChild(el("li", "", r));
  box.appendChild(reasons);
  out.appendChild(box);
  out.appendChild(el("p", "disclaimer", t.disclaimer));
}

function showResult(c) {
  if (c.report) out.appendChild(el("pre", "report", c.report));
  for (const [name, why] of Object.entries(c.missing || {})) {
    out.appendChild(el("p", "hint", "missing analysis: " + name + " (" + why + ")"));
  }
  if (c.saga) {
    const steps = c.saga.steps.map((s) => s.name + "=" + s.status).join(", ");
    out.appendChild(el("p", "hint", "saga " + c.saga.id + ": " + c.saga.status + " (" + steps + ")"));
  }
}

document.getElementById("consult").addEventListener("submit", async (e) => {
  e.preventDefault();
  errorBox.hidden = true;
  out.textContent = "";
  const input = { text: document.getElementById("text").value };
  const age = document.getElementById("age").value;
  if (age !== "") input.age = Number(age);
  const headers = { "Content-Type": "application/json" };
  const key = document.getElementById("api-key").value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  try {
    const response = await fetch("/v1/graphs/health/stream", {
      method: "POST", headers, body: JSON.stringify({ input }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || "the server answered " + response.status);
    }
    for await (const ev of sseEvents(response)) {
      if (ev.event === "node_finished" && ev.data.path.join("/") === "triage") showTriage(ev.data.output.triage);
      else if (ev.event === "done") showResult(ev.data.output);
      else if (ev.event === "error") throw new Error((ev.data.error && ev.data.error.message) || "the consultation failed");
    }
  } catch (err) {
    errorBox.textContent = String(err.message || err);
    errorBox.hidden = false;
  }
});
