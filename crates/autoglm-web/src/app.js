// autoglm console: the few things a server-rendered page cannot do alone.
// Every page works without this script; it only keeps parts fresh.
"use strict";

// Parts marked data-live are replaced by the same parts of a fresh copy of
// the page every few seconds, so states and charts follow what happens.
function refreshLiveParts() {
  const live = document.querySelectorAll("[data-live][id]");
  if (live.length === 0) return;
  setInterval(async () => {
    if (document.hidden) return;
    const answer = await fetch(location.href, { credentials: "same-origin" });
    if (!answer.ok) return;
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
    for (const { id } of live) {
      const now = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (!now || !next) continue;
      // Tables the user opened stay open.
      const opened = [...now.querySelectorAll("details")].map((d) => d.open);
      next.querySelectorAll("details").forEach((d, i) => { d.open = opened[i] ?? d.open; });
      now.replaceWith(next);
    }
  }, 3000);
}

// A log with data-follow is fetched again every second while "Follow" is ticked.
function followLog() {
  const log = document.querySelector("pre[data-follow]");
  const follow = document.getElementById("follow");
  if (!log || !follow) return;
  log.scrollTop = log.scrollHeight;
  setInterval(async () => {
    if (!follow.checked || document.hidden) return;
    const answer = await fetch(log.dataset.follow, { credentials: "same-origin" });
    if (!answer.ok) return;
    log.textContent = await answer.text();
    log.scrollTop = log.scrollHeight;
  }, 1000);
}

// The service form's YAML view follows the fields as they are filled in.
function yamlView() {
  const form = document.querySelector("form[data-yaml]");
  const view = document.getElementById("yaml");
  if (!form || !view) return;
  let pending = null;
  form.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      const body = new URLSearchParams(new FormData(form));
      const answer = await fetch(form.dataset.yaml, { method: "POST", body, credentials: "same-origin" });
      if (answer.ok) view.textContent = await answer.text();
    }, 150);
  });
}

// An upload form with data-progress sends its files with a progress bar, and
// then shows the page the server answers with.
function uploadProgress() {
  const form = document.querySelector("form[data-progress]");
  if (!form) return;
  const bar = document.getElementById(form.dataset.progress);
  const words = document.getElementById(form.dataset.progress + "-words");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      bar.max = e.total;
      bar.value = e.loaded;
      words.textContent = Math.floor((100 * e.loaded) / e.total) + "% of " + (e.total / 1048576).toFixed(1) + " MiB sent";
    });
    request.addEventListener("load", () => {
      document.open();
      document.write(request.responseText);
      document.close();
      // A refused upload is shown on the model's page, not at the upload's URL.
      history.replaceState(null, "", request.status < 400 ? request.responseURL : form.dataset.page);
    });
    request.addEventListener("error", () => {
      words.textContent = "The upload failed: the connection to the console was lost.";
    });
    bar.hidden = false;
    request.send(new FormData(form));
  });
}

// A textarea with data-validate is checked as it is typed: its form's key,
// format and content go to that URL (which asks the console's API, as a
// publish would check them) a moment after the last keystroke, and the first
// error, with its line and column, shows beside the field. The publish is
// checked again on the server either way.
function validateAsTyped() {
  for (const field of document.querySelectorAll("textarea[data-validate]")) {
    const form = field.form;
    const shown = document.getElementById(field.id + "-validation");
    let pending = null;
    let asked = 0;
    const check = () => {
      clearTimeout(pending);
      pending = setTimeout(async () => {
        const mine = ++asked;
        const body = new URLSearchParams({
          key: form.elements.key?.value ?? "",
          format: form.elements.format?.value ?? "",
          content: field.value,
        });
        const answer = await fetch(field.dataset.validate, { method: "POST", body, credentials: "same-origin" });
        // Only the answer to the latest text is shown (a lapsed session answers with the login page).
        const json = (answer.headers.get("content-type") ?? "").includes("json");
        if (!answer.ok || !json || mine !== asked) return;
        const found = await answer.json();
        shown.textContent = found.valid ? "Valid " + found.format + "." : found.error;
        shown.className = "validation " + (found.valid ? "valid" : "invalid");
        shown.dataset.line = found.line ?? "";
        shown.dataset.column = found.column ?? "";
        field.setAttribute("aria-invalid", found.valid ? "false" : "true");
      }, 300);
    };
    form.addEventListener("input", check);
    form.addEventListener("change", check);
  }
}

// A form with data-confirm asks before it is sent (restoring a snapshot,
// deleting a key); without this script it is sent straight away.
function confirmForms() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

refreshLiveParts();
followLog();
yamlView();
uploadProgress();
validateAsTyped();
confirmForms();
