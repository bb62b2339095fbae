// The resume page: reads the dropped file, sends it base64-encoded to the resume graph
// (POST /v1/graphs/resume/invoke) and shows the profile and the matches.
"use strict";

const form = document.getElementById("upload");
const fileInput = document.getElementById("file");
const keyInput = document.getElementById("api-key");
const errorBox = document.getElementById("error");
keyInput.value = localStorage.getItem("weft.apiKey") || "";

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

function show(output) {
  const p = output.profile;
  document.getElementById("name").textContent =
    `${p.name || "(no name)"}: ${output.years_experience} years`;
  document.getElementById("summary").textContent = p.summary || "";
  document.getElementById("skills").textContent = p.skills.join(", ") || "(none found)";
  const list = document.getElementById("matches");
  list.replaceChildren();
  if (!output.matches.length) {
    const item = document.createElement("li");
    item.textContent = "No job ad matches well enough.";
    list.append(item);
  }
  for (const m of output.matches) {
    const item = document.createElement("li");
    item.textContent = `${m.title} (${m.job}), score ${m.score.toFixed(2)}: ${m.explanation}`;
    list.append(item);
  }
  document.getElementById("profile").hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const file = fileInput.files[0];
  if (!file) return;
  const headers = { "Content-Type": "application/json" };
  const key = keyInput.value.trim();
  if (key) {
    headers["Authorization"] = "Bearer " + key;
    localStorage.setItem("weft.apiKey", key);
  }
  const body = { input: { content_base64: base64(await file.arrayBuffer()), filename: file.name } };
  const response = await fetch("/v1/graphs/resume/invoke", {
    method: "POST", headers, body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    errorBox.textContent = (data.error && data.error.message) || `error ${response.status}`;
    errorBox.hidden = false;
    return;
  }
  show(data.output);
});
