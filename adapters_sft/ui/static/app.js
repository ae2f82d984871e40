// The adapters-sft UI page: plain DOM and fetch, no framework. Every action is a request to
// the server's JSON API (adapters_sft/ui/api.py); long operations are CLI jobs it polls.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (sel) => document.querySelector(sel);
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
let current = null;      // the run shown in detail
let liveRun = null;      // output_dir of the training started here
let liveJob = null;

async function call(path, body) {
  const options = { headers: { "X-Token": token } };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok && !("ok" in data)) throw new Error(data.error || response.statusText);
  return data;
}

function say(text) { $("#status").textContent = text || ""; }
const guarded = (work) => async (...args) => {
  try { say(""); return await work(...args); } catch (e) { say(e.message); return null; }
};

// --- tabs ------------------------------------------------------------------------------------
function show(tab) {
  document.querySelectorAll("section.tab").forEach((s) => { s.hidden = s.id !== tab; });
  document.querySelectorAll("header nav button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  if (tab === "runs") loadRuns();
  if (tab === "jobs") loadJobs();
  if (tab === "chat") loadChatRuns();
}
document.querySelectorAll("header nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));

// --- curves ----------------------------------------------------------------------------------
function drawCurves(svg, series) {
  // series: [{name, points: [[step, loss], ...]}]; one plot, shared axes
  const all = series.flatMap((s) => s.points);
  svg.innerHTML = "";
  if (!all.length) { svg.innerHTML = '<text x="20" y="120">no loss logged yet</text>'; return; }
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const X = (x) => 50 + (x1 === x0 ? 0 : (x - x0) / (x1 - x0)) * 570;
  const Y = (y) => 215 - (y1 === y0 ? 0.5 : (y - y0) / (y1 - y0)) * 195;
  let html = `<text x="4" y="24">${y1.toPrecision(3)}</text><text x="4" y="215">${y0.toPrecision(3)}</text>`
    + `<text x="50" y="235">step ${x0}</text><text x="560" y="235">step ${x1}</text>`;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ");
    html += `<polyline class="series" fill="none" stroke="${color}" stroke-width="2" points="${pts}"></polyline>`;
    s.points.forEach((p) => { html += `<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="2.5" fill="${color}"></circle>`; });
    if (series.length > 1) html += `<text x="${420}" y="${16 + 14 * i}" style="fill:${color}">${escape(s.name)}</text>`;
  });
  svg.innerHTML = html;
}
const lossPoints = (metrics) => metrics.filter((m) => "loss" in m && !m.final).map((m) => [m.step, m.loss]);
// a grpo run's curve is the mean reward of its sampled answers (its loss stays near 0 by construction)
const rewarded = (metrics) => metrics.some((m) => "reward" in m && !m.final);
const curvePoints = (metrics) => rewarded(metrics)
  ? metrics.filter((m) => "reward" in m && !m.final).map((m) => [m.step, m.reward]) : lossPoints(metrics);
const curveName = (path, metrics) => rewarded(metrics) ? `${path} (reward)` : path;
function escape(text) { const d = document.createElement("div"); d.textContent = String(text); return d.innerHTML; }
function size(n) { return n > 1e9 ? (n / 1e9).toFixed(2) + " GB" : (n / 1e6).toFixed(1) + " MB"; }
function scoreText(s) {
  if (!s) return "";
  return Object.entries(s).filter(([, v]) => typeof v === "number").slice(0, 3)
    .map(([k, v]) => `${k} ${v < 1 ? (100 * v).toFixed(1) + "%" : v.toPrecision(4)}`).join(", ");
}

// --- runs ------------------------------------------------------------------------------------
const loadRuns = guarded(async () => {
  const runs = await call("/api/runs");
  $("#runs-table tbody").innerHTML = runs.map((r) => `<tr class="run" data-path="${escape(r.path)}">`
    + `<td><input type="checkbox" class="pick" value="${escape(r.path)}"></td><td>${escape(r.path)}</td>`
    + `<td>${r.state}</td><td>${escape(r.model)}</td><td>${escape(r.strategy)}</td><td>${escape(r.task)}</td>`
    + `<td>${r.steps}</td><td>${r.final_loss == null ? "" : Number(r.final_loss).toFixed(4)}</td>`
    + `<td>${escape(scoreText(r.scores))}</td><td>${size(r.size)}</td></tr>`).join("");
  document.querySelectorAll("tr.run").forEach((tr) => tr.addEventListener("click", (e) => {
    if (!e.target.classList.contains("pick")) openRun(tr.dataset.path);
  }));
});

const openRun = guarded(async (path) => {
  const run = await call(`/api/run?path=${encodeURIComponent(path)}`);
  current = path;
  $("#run-detail").hidden = false;
  $("#run-title").textContent = `${path} (${run.state})`;
  drawCurves($("#run-curve"), [{ name: curveName(path, run.metrics), points: curvePoints(run.metrics) }]);
  $("#run-eval").textContent = run.eval ? JSON.stringify(run.eval, null, 2) : "(none)";
  showGeneral(run.eval && run.eval.general);
  $("#run-recipe").textContent = run.recipe;
  for (const [id, name] of [["#loss-png", "loss.png"], ["#confusion-png", "confusion.png"]]) {
    $(id).hidden = !run.files[name];
    if (run.files[name]) $(id).src = `/api/run-file?path=${encodeURIComponent(path)}&name=${name}&t=${Date.now()}`;
  }
  // pictures are fetched by the browser itself, which cannot send the header: the token rides along
  if (token) document.querySelectorAll(".pictures img").forEach((img) => { if (img.src) img.src += `&token=${token}`; });
});

// the general probe (scores/general.py): its summary line and its three prompts, before and after
function showGeneral(g) {
  $("#run-general").hidden = !g;
  if (!g) return;
  $("#run-general-line").textContent = `${(100 * g.unchanged).toFixed(0)}% of ${g.prompts} answers unchanged `
    + `(${(100 * g.prefix_agree).toFixed(0)}% agree on their first 16 tokens), KL ${g.kl.toFixed(3)} nats/token, `
    + `answer NLL ${g.nll_reference.toFixed(3)} -> ${g.nll_tuned.toFixed(3)}`;
  $("#run-general-examples tbody").innerHTML = g.examples.map((e) => `<tr><td>${escape(e.prompt)}</td>`
    + `<td>${escape(e.before)}</td><td>${escape(e.after)}</td></tr>`).join("");
}

$("#compare").addEventListener("click", guarded(async () => {
  const picked = [...document.querySelectorAll(".pick:checked")].map((c) => c.value);
  if (picked.length < 2) throw new Error("tick two or more runs to compare");
  const runs = await Promise.all(picked.map((p) => call(`/api/run?path=${encodeURIComponent(p)}`)));
  $("#comparison").hidden = false;
  drawCurves($("#compare-curve"), runs.map((r) => ({ name: curveName(r.path, r.metrics), points: curvePoints(r.metrics) })));
  const keys = [...new Set(runs.flatMap((r) => Object.keys((r.eval && r.eval.after) || {})))]
    .filter((k) => runs.some((r) => r.eval && typeof r.eval.after[k] === "number"));
  $("#compare-scores").innerHTML = `<tr><th>score (after)</th>${runs.map((r) => `<th>${escape(r.path)}</th>`).join("")}</tr>`
    + keys.map((k) => `<tr><td>${escape(k)}</td>${runs.map((r) => `<td>${r.eval && r.eval.after && r.eval.after[k] != null ? Number(r.eval.after[k]).toPrecision(4) : ""}</td>`).join("")}</tr>`).join("");
}));

document.querySelectorAll("#run-detail [data-op]").forEach((b) => b.addEventListener("click", guarded(async () => {
  await call(`/api/do/${b.dataset.op}`, { run: current, format: b.dataset.format });
  show("jobs");
})));
$("#chat-this").addEventListener("click", async () => {
  show("chat");
  await loadChatRuns();
  $("#chat-run").value = current;
  fresh = true;
  $("#transcript").innerHTML = "";
});

// --- train -----------------------------------------------------------------------------------
function addOverride(key = "", value = "") {
  const row = document.createElement("div");
  row.className = "override";
  row.innerHTML = '<input class="key" placeholder="key (training.max_steps)" size="32">'
    + '<input class="value" placeholder="value" size="24"><button class="remove">x</button><span class="error"></span>';
  row.querySelector(".key").value = key;
  row.querySelector(".value").value = value;
  row.querySelector(".remove").addEventListener("click", () => { row.remove(); validate(); });
  row.querySelectorAll("input").forEach((i) => i.addEventListener("change", () => validate()));
  $("#overrides").appendChild(row);
  return row;
}
function overrides() {
  return [...document.querySelectorAll(".override")].filter((r) => r.querySelector(".key").value.trim())
    .map((r) => `${r.querySelector(".key").value.trim()}=${r.querySelector(".value").value.trim()}`);
}
let asked = 0;  // the newest validation asked; an older answer arriving late is dropped
const validate = guarded(async () => {
  const mine = ++asked;
  const result = await call("/api/validate", { recipe: $("#recipe").value, overrides: overrides() });
  if (mine !== asked) return null;
  document.querySelectorAll(".override .error").forEach((e) => { e.textContent = ""; });
  const box = $("#validation");
  if (result.ok) {
    box.innerHTML = '<span class="ok">valid</span>';
    $("#command").textContent = result.command;
    return result;
  }
  // the error goes next to the field it names, else under the form
  const row = [...document.querySelectorAll(".override")].find((r) => r.querySelector(".key").value.trim() === result.key);
  if (row) { row.querySelector(".error").textContent = result.error; box.innerHTML = ""; }
  else box.innerHTML = `<span class="bad">${escape(result.error)}</span>`;
  $("#command").textContent = "";
  return result;
});

const loadRecipes = guarded(async () => {
  const recipes = await call("/api/recipes");
  $("#recipe").innerHTML = recipes.map((r) => `<option value="${escape(r.name)}">${escape(r.name)}${r.shipped ? "" : " (here)"}</option>`).join("");
  if (recipes.some((r) => r.name === "smollm2-135m/lora")) $("#recipe").value = "smollm2-135m/lora";
  await loadRecipe();
});
const loadRecipe = guarded(async (clear) => {
  const r = await call(`/api/recipe?name=${encodeURIComponent($("#recipe").value)}`);
  $("#about").innerHTML = r.about.map((line) => `<p>${escape(line)}</p>`).join("");
  const resolved = [["model", r.resolved.model], ["data.train", r.resolved.data.train], ["data.max_length", r.resolved.data.max_length],
    ...Object.entries(r.resolved.training).map(([k, v]) => [`training.${k}`, v])];
  $("#options tbody").innerHTML = [...resolved.map(([k, v]) => ({ key: k, default: v, help: "" })), ...r.options]
    .map((o) => `<tr data-key="${escape(o.key)}" data-value="${escape(typeof o.default === "object" ? JSON.stringify(o.default) : o.default)}">`
      + `<td>${escape(o.key)}</td><td>${escape(JSON.stringify(o.default))}</td><td>${escape(o.help)}</td></tr>`).join("");
  document.querySelectorAll("#options tbody tr").forEach((tr) => tr.addEventListener("click", () => {
    addOverride(tr.dataset.key, tr.dataset.value === "null" ? "" : tr.dataset.value).querySelector(".value").focus();
  }));
  if (clear) $("#overrides").innerHTML = "";  // another recipe: its own keys
  await validate();
  document.body.dataset.recipe = r.name;    // loaded and checked (what the browser test waits for)
});
$("#recipe").addEventListener("change", () => loadRecipe(true));
$("#add-override").addEventListener("click", () => addOverride().querySelector(".key").focus());
$("#validate").addEventListener("click", validate);

async function startJob(verb) {
  const checked = await validate();
  if (!checked || !checked.ok) return null;
  const job = await call(`/api/do/${verb}`, { recipe: $("#recipe").value, overrides: overrides() });
  $("#command").textContent = job.command;  // exactly what runs
  return [job, checked];
}
$("#start").addEventListener("click", guarded(async () => {
  const started = await startJob("train");
  if (!started) return;
  [liveJob, liveRun] = [started[0].id, started[1].output_dir];
  $("#live").hidden = false;
  $("#live-path").textContent = liveRun;
  $("#live-step").textContent = "starting...";
}));
for (const verb of ["plan", "check"]) {
  $(`#${verb}`).addEventListener("click", guarded(async () => { if (await startJob(verb)) show("jobs"); }));
}

async function pollLive() {
  if (!liveRun) return;
  const jobs = await call("/api/jobs");
  const job = jobs.find((j) => j.id === liveJob);
  let line = job ? `job ${job.id}: ${job.state}` : "";
  try {
    const run = await call(`/api/run?path=${encodeURIComponent(liveRun)}`);
    const logged = run.metrics.filter((m) => "loss" in m && !m.final);
    const last = logged[logged.length - 1];
    if (last) {
      line += ` | step ${last.step}, loss ${Number(last.loss).toFixed(4)}`
        + (last.reward != null ? `, reward ${Number(last.reward).toFixed(3)}` : "")
        + (last.kl != null ? `, KL ${Number(last.kl).toFixed(4)}` : "")
        + (last.learning_rate != null ? `, lr ${Number(last.learning_rate).toExponential(2)}` : "")
        + (last.tokens_per_second != null ? `, ${last.tokens_per_second} tokens/s` : "")
        + (last.peak_memory_gb != null ? `, ${last.peak_memory_gb} GB` : "");
    }
    drawCurves($("#live-curve"), [{ name: curveName(liveRun, run.metrics), points: curvePoints(run.metrics) }]);
  } catch (e) { /* the run folder appears once the data is prepared */ }
  $("#live-step").textContent = line;
}

// --- jobs ------------------------------------------------------------------------------------
function shown(job) {
  // `check` marks the tokens the model is trained on as [[...]] when not on a terminal
  const text = escape(job.output.split("\n").slice(job.verb === "check" ? -120 : -40).join("\n"));
  return job.verb === "check" ? text.replace(/\[\[([\s\S]*?)\]\]/g, "<mark>$1</mark>") : text;
}
const loadJobs = guarded(async () => {
  const jobs = await call("/api/jobs");
  $("#jobs-list").innerHTML = jobs.length ? jobs.map((j) => `<div class="job" data-id="${j.id}"><p><b>job ${j.id}</b> `
    + `<span class="state">${escape(j.state)}</span> <code>${escape(j.command)}</code> `
    + (j.state === "running" ? `<button class="stop" data-id="${j.id}">Stop (saves a checkpoint)</button>` : "")
    + `</p><pre>${shown(j)}</pre></div>`).join("") : "<p>no jobs yet</p>";
  document.querySelectorAll("button.stop").forEach((b) => b.addEventListener("click", guarded(async () => {
    await call("/api/stop", { id: Number(b.dataset.id) });
    loadJobs();
  })));
});

// --- chat ------------------------------------------------------------------------------------
const loadChatRuns = guarded(async () => {
  const runs = (await call("/api/runs")).filter((r) => r.state === "finished");
  const keep = $("#chat-run").value;
  $("#chat-run").innerHTML = runs.map((r) => `<option value="${escape(r.path)}">${escape(r.path)}</option>`).join("");
  if (keep) $("#chat-run").value = keep;
});
let fresh = true;
$("#chat-reset").addEventListener("click", () => { fresh = true; $("#transcript").innerHTML = ""; });
$("#chat-run").addEventListener("change", () => { fresh = true; $("#transcript").innerHTML = ""; });
$("#chat-send").addEventListener("click", guarded(async () => {
  const message = $("#chat-input").value.trim();
  if (!message) return;
  $("#chat-input").value = "";
  $("#transcript").insertAdjacentHTML("beforeend", `<div class="you">${escape(message).replace(/\n/g, "<br>")}</div>`);
  const answer = document.createElement("div");
  answer.className = "bot";
  $("#transcript").appendChild(answer);
  const response = await fetch("/api/chat", { method: "POST", headers: { "Content-Type": "application/json", "X-Token": token },
    body: JSON.stringify({ run: $("#chat-run").value, message, reset: fresh }) });
  fresh = false;
  if (!response.ok) throw new Error((await response.json()).error);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {  // streamed as generated
    const { done, value } = await reader.read();
    if (done) break;
    answer.textContent += decoder.decode(value, { stream: true });
  }
  answer.classList.add("done");
}));
$("#chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#chat-send").click(); }
});

// --- start -----------------------------------------------------------------------------------
setInterval(() => {
  if (!$("#jobs").hidden) loadJobs();
  pollLive().catch((e) => say(e.message));
}, 2000);
loadRuns();
loadRecipes();
