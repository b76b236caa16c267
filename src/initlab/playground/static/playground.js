// initlab playground: the page. Settings live in the URL; the server trains; this draws what it streams
// (with charts.js, loaded first: COLORS and every draw* function).
"use strict";

const WIDTHS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128];
const LRS = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const BATCHES = ["full", 1, 4, 8, 16, 32, 64, 128, 256];
const PRESETS = [
  ["The chapter: constant vs default vs Xavier", "scheme=constant(value=0.05)&scheme=default&scheme=xavier_uniform&depth=4&width=32&activation=relu&lr=0.1"],
  ["Too small, too large: normal(std=0.01) vs normal(std=3)", "scheme=normal(std=0.01)&scheme=normal(std=3)&scheme=he_normal&depth=4&width=32&activation=relu&lr=0.1"],
  ["Deep tanh: Xavier vs LeCun vs orthogonal", "scheme=xavier_uniform&scheme=lecun_normal&scheme=orthogonal&depth=8&width=32&activation=tanh&dataset=spiral&noise=0.1"],
  ["Symmetry under Adam: constant, tanh", "scheme=constant(value=0.05)&scheme=xavier_uniform&depth=2&width=8&activation=tanh&optimizer=adam&lr=0.01"],
];

const $ = (id) => document.getElementById(id);
let catalog = null, sid = null, source = null, points = null, state = null;
let schemes = [{ name: "xavier_uniform", params: {} }];
let wantPlaying = false, pausedByHiding = false, pending = null, dataVersion = null;
let units = {}, unitsBusy = false, unitsAt = 0;   // later layers' unit curves, per run, fetched on demand
// The upload limits are the server's (catalog.upload: upload.MAX_BYTES, MAX_ROWS); never written here.
const uploadKiB = () => Math.floor(catalog.upload.max_bytes / 1024);

// ---------------------------------------------------------------- settings <-> URL <-> controls

function fmt(v) { return String(+(+v).toPrecision(6)); }

function schemeText(s) {
  const keys = Object.keys(s.params);
  return keys.length ? `${s.name}(${keys.map((k) => `${k}=${s.params[k]}`).join(",")})` : s.name;
}

function parseSchemeText(text) {
  const m = /^([a-z_]+)(?:\(([^()]*)\))?$/.exec(text.trim());
  if (!m) return { name: text, params: {} };
  const params = {};
  (m[2] || "").split(",").filter(Boolean).forEach((p) => { const [k, v] = p.split("="); params[k] = v; });
  return { name: m[1], params };
}

function query() {
  const q = new URLSearchParams();
  for (const id of ["dataset", "noise", "n", "data_seed", "depth"]) q.append(id, $(id).value);
  q.append("width", $("width").value);
  q.append("activation", $("activation").value);
  for (const s of schemes) q.append("scheme", schemeText(s));
  q.append("optimizer", $("optimizer").value);
  q.append("lr", $("lr").value);
  if ($("weight_decay").value !== "" && "weight_decay" in ((catalog.optimizer_params || {})[$("optimizer").value] || {})) {
    q.append("weight_decay", $("weight_decay").value);
  }
  for (const id of ["batch_size", "seed", "speed"]) q.append(id, $(id).value);
  return q.toString().replace(/%28/g, "(").replace(/%29/g, ")").replace(/%2C/g, ",").replace(/%3D/g, "=");
}

function ensureOption(select, value, label) {
  value = String(value);
  if (![...select.options].some((o) => o.value === value)) {
    select.add(new Option(label || value, value));
  }
  select.value = value;
}

function fill(select, values, label = (v) => v) {
  select.innerHTML = "";
  for (const v of values) select.add(new Option(label(v), String(v)));
}

function showSettings(s) {
  if (s.dataset === "custom") ensureOption($("dataset"), "custom", "custom (your data)");
  $("dataset").value = s.dataset;
  $("noise").value = s.noise; $("n").value = s.n; $("data_seed").value = s.data_seed; $("depth").value = s.depth;
  ensureOption($("width"), s.width);
  $("activation").value = s.activation; $("optimizer").value = s.optimizer;
  ensureOption($("lr"), s.lr, fmt(s.lr));
  ensureOption($("batch_size"), s.batch_size === null ? "full" : s.batch_size, s.batch_size === null ? "full" : String(s.batch_size));
  $("weight_decay").value = s.weight_decay === null ? "" : s.weight_decay;
  $("seed").value = s.seed; $("speed").value = s.speed;
  schemes = s.schemes.map(parseSchemeText);
  renderSchemes();
  outputs();
}

function outputs() {
  for (const o of document.querySelectorAll("output")) o.textContent = $(o.htmlFor).value;
  $("speed-value").textContent = $("speed").value;
  const w = $("width").value, d = +$("depth").value;
  $("net-text").textContent = `2 → ${Array(d).fill(w).join(" → ")} → 1, ${$("activation").value}`;
  const custom = $("dataset").value === "custom";
  for (const id of ["noise", "n"]) $(id).disabled = custom;
  $("custom-note").hidden = !custom;
  const layer = $("lines-layer"), keep = layer.value;
  if (layer.options.length !== d) { fill(layer, Array.from({ length: d }, (_, k) => k + 1), (k) => `layer ${k}`); layer.value = Math.min(+keep || 1, d); }
  // weight decay only for the optimizers that take it (the catalog says which: adamw)
  const takes = catalog && "weight_decay" in ((catalog.optimizer_params || {})[$("optimizer").value] || {});
  $("weight_decay").closest("label").style.display = takes ? "" : "none";
}

function renderSchemes() {
  const box = $("schemes");
  box.innerHTML = "";
  schemes.forEach((s, i) => {
    const info = catalog.schemes.find((c) => c.name === s.name) || catalog.schemes[0];
    const div = document.createElement("div");
    div.className = "scheme";
    div.style.setProperty("--c", COLORS[i]);
    const head = document.createElement("div");
    head.className = "head";
    const select = document.createElement("select");
    select.id = `scheme-${i}`;
    fill(select, catalog.schemes.map((c) => c.name));
    select.value = info.name;
    select.onchange = () => { schemes[i] = { name: select.value, params: {} }; renderSchemes(); changed(); };
    head.appendChild(select);
    if (schemes.length > 1) {
      const rm = document.createElement("button");
      rm.className = "small"; rm.textContent = "×"; rm.title = "remove";
      rm.onclick = () => { schemes.splice(i, 1); renderSchemes(); changed(); };
      head.appendChild(rm);
    }
    div.appendChild(head);
    const f = document.createElement("div");
    f.className = "formula"; f.textContent = info.formula;
    div.appendChild(f);
    for (const p of info.params) {
      const label = document.createElement("label");
      label.append(p.name);
      let input;
      if (p.kind === "choice") {
        input = document.createElement("select");
        fill(input, p.choices);
      } else {
        input = document.createElement("input");
        input.type = "number"; input.step = "any"; input.min = p.min; input.max = p.max;
        if (p.default === null) input.placeholder = "auto";
      }
      input.id = `scheme-${i}-${p.name}`;
      input.value = s.params[p.name] !== undefined ? s.params[p.name] : (p.default === null ? "" : p.default);
      input.onchange = () => {
        const v = input.value;
        const isDefault = p.kind === "choice" ? v === String(p.default) : (v === "" || +v === p.default);
        if (isDefault) delete schemes[i].params[p.name]; else schemes[i].params[p.name] = v;
        changed();
      };
      label.appendChild(input);
      div.appendChild(label);
    }
    box.appendChild(div);
  });
  $("add-scheme").hidden = schemes.length >= catalog.max_schemes;
}

// ---------------------------------------------------------------- talking to the server

// Anything but a GET says it is JSON: the server refuses other POSTs (no other web page can send one).
async function api(method, path, payload) {
  const r = await fetch(path, method === "GET" ? { method }
    : { method, headers: { "Content-Type": "application/json" }, body: payload === undefined ? undefined : JSON.stringify(payload) });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `the server answered ${r.status}`);
  return body;
}

function showError(message) {
  const e = $("error");
  e.textContent = message || "";
  e.hidden = !message;
}

// A link the server refuses keeps what it can: the refused values are replaced by the nearest allowed
// ones (the server says which), the rest of the link stays, and the page says what changed.
async function start(q) {
  try {
    const doc = await api("POST", `/api/sessions?${q}`);
    adopt(doc);
    showError("");
  } catch (err) {
    let near = null;
    try { near = await api("GET", `/api/settings/nearest?${q}`); } catch (e) { near = null; }
    adopt(await api("POST", `/api/sessions?${near ? near.query : ""}`));
    showRefused(near ? near.refused : [], err.message);
  }
  connect();
}

function showRefused(refused, fallback) {
  const e = $("error");
  e.innerHTML = "";
  const head = document.createElement("b");
  head.textContent = refused.length ? "Part of your link was refused; the rest of it is kept." : fallback;
  e.appendChild(head);
  const ul = document.createElement("ul");
  for (const r of refused) {
    const li = document.createElement("li");
    const then = r.nearest === null ? "left at its default"
      : Number.isNaN(+r.nearest) ? `using ${r.nearest} instead` : `using ${r.nearest}, the nearest allowed`;
    li.textContent = `${r.setting}=${r.value}: ${r.reason} → ${then}.`;
    ul.appendChild(li);
  }
  e.appendChild(ul);
  e.hidden = false;
}

function adopt(doc) {
  sid = doc.session;
  showSettings(doc.settings);
  history.replaceState(null, "", `?${doc.query}`);
  render(doc);
}

function connect() {
  if (source) source.close();
  source = new EventSource(`/api/sessions/${sid}/stream`);
  source.addEventListener("state", (e) => render(JSON.parse(e.data)));
  source.addEventListener("closed", () => {
    source.close();
    showError("This session was freed; starting a new one.");
    start(query());
  });
}

function changed() {
  outputs();
  history.replaceState(null, "", `?${query()}`);
  clearTimeout(pending);
  pending = setTimeout(async () => {
    try {
      const doc = await api("POST", `/api/sessions/${sid}/settings?${query()}`);
      showError("");
      history.replaceState(null, "", `?${doc.query}`);
      render(doc);
      if (wantPlaying) control("play");
    } catch (err) { showError(err.message); }
  }, 200);
}

// ---------------------------------------------------------------- your data, taking the network home

async function upload(text) {
  if (new Blob([text]).size > catalog.upload.max_bytes) { showError(`the file is larger than ${uploadKiB()} KiB, the playground's limit.`); return; }
  try {
    wantPlaying = false;
    adopt(await api("POST", `/api/sessions/${sid}/data`, { csv: text }));
    showError("");
  } catch (err) { showError(`Your data was not loaded: ${err.message}`); }
}

async function showSnippet(i) {
  try {
    const r = await fetch(`/api/sessions/${sid}/export/snippet?run=${i}`);
    if (!r.ok) throw new Error((await r.json()).error);
    $("snippet-text").textContent = await r.text();
    $("snippet-note").hidden = !(state && state.settings.dataset === "custom");
    $("snippet-download").href = `/api/sessions/${sid}/export/snippet?run=${i}`;
    $("snippet-download").download = `initlab-playground-run${i}.py`;
    $("snippet-box").hidden = false;
    $("snippet-box").scrollIntoView({ block: "nearest" });
  } catch (err) { showError(err.message); }
}

async function control(action) {
  try {
    if (action === "play" || action === "pause") wantPlaying = action === "play";
    render(await api("POST", `/api/sessions/${sid}/${action}`));
  } catch (err) { showError(err.message); }
}

// ---------------------------------------------------------------- drawing

function render(doc) {
  // a control's answer read before a snapshot the stream has already shown: keep the newer one (else
  // the page would show a step the server has left, and no later snapshot would come to correct it)
  if (state && doc.session === state.session && doc.version < state.version) return;
  state = doc;
  if (doc.points) { points = doc.points; dataVersion = doc.data_version; }
  if (doc.data_version !== dataVersion) {  // new data from a change made elsewhere: fetch it
    dataVersion = doc.data_version;
    api("GET", `/api/sessions/${sid}/points`).then((p) => { points = p; }).catch(() => {});
  }
  $("step-count").textContent = doc.step;
  // the rate actually achieved, when the server cannot keep up with the speed asked
  const slow = doc.playing && doc.rate !== null && doc.rate !== undefined && doc.rate < 0.9 * doc.settings.speed;
  $("speed-achieved").textContent = slow ? `getting ${Math.round(doc.rate)}/s: the server cannot keep up` : "";
  $("record-link").href = `/api/sessions/${sid}/export/record`;
  const play = $("play");
  play.classList.toggle("playing", doc.playing);
  play.innerHTML = doc.playing ? "❚❚ pause" : "▶ play";
  if (!doc.playing && doc.done) wantPlaying = false;
  renderRuns(doc.runs);
  lineChart($("loss-chart"), doc.runs, ["train_loss", "test_loss"], { log: true });
  lineChart($("acc-chart"), doc.runs, ["train_accuracy", "test_accuracy"], { lo: 0.4, hi: 1 });
  drawDepth($("depth-out"), doc.runs, "preact_std");
  drawDepth($("depth-grad"), doc.runs, "grad_std");
  for (const id of ["loss-legend", "acc-legend"]) legend($(id), doc.runs, "solid train, dashed test");
  legend($("depth-legend"), doc.runs, "solid measured at step 0, dashed mean-field prediction");
  // where the theory does not apply (a constant start), no dashed line, and one line saying why
  const notes = doc.runs.filter((r) => r.initial_layers.theory_note).map((r) => `${r.label}: ${r.initial_layers.theory_note}.`);
  $("depth-note").textContent = notes.join("\n");
  $("depth-note").hidden = !notes.length;
  fetchUnits(doc);
}

// What the neuron-lines toggle asks for: nothing, the first layer's lines, or a later layer's curves.
function linesFor(run, i) {
  if (!$("lines").checked) return null;
  const layer = +$("lines-layer").value;
  if (layer <= 1) return run.neurons ? { layer: 1, neurons: run.neurons } : null;
  const u = units[i];
  return u && u.layer === layer ? u : null;
}

// A later layer's curves are fetched, at most a few times a second, when shown.
async function fetchUnits(doc) {
  const layer = +$("lines-layer").value;
  if (!$("lines").checked || layer <= 1 || unitsBusy) return;
  const fresh = doc.runs.every((r, i) => units[i] && units[i].layer === layer && units[i].step === r.step);
  if (fresh || performance.now() - unitsAt < 300) return;
  unitsBusy = true; unitsAt = performance.now();
  try {
    const got = await Promise.all(doc.runs.map((r, i) => api("GET", `/api/sessions/${sid}/units?run=${i}&layer=${layer}`)
      .then((u) => ({ ...u, step: r.step }))));
    units = Object.fromEntries(got.map((u, i) => [i, u]));
    if (state) renderRuns(state.runs);
  } catch (err) { /* a changed network: the next snapshot asks again */ } finally { unitsBusy = false; }
}

function runPanel(i) {
  let el = $(`run-${i}`);
  if (el) return el;
  el = document.createElement("div");
  el.className = "run"; el.id = `run-${i}`;
  el.style.setProperty("--c", COLORS[i]);
  el.innerHTML = `<h4><span class="label"></span><span class="acc"></span></h4>
    <div class="body"><div class="map">
    <canvas class="contour" width="636" height="636" data-testid="contour-${i}" data-step="-1"></canvas>
    <div class="exports"><button class="small snippet" data-testid="snippet-${i}">PyTorch snippet</button>
      <a class="weights" data-testid="weights-${i}" download>weights .pt</a></div></div>
    <div class="info"><div class="verdict"></div>
    <div class="sub"><span>effective width per layer</span><span class="eff" data-testid="eff-${i}"></span></div>
    <div class="widths"></div>
    <div class="sub"><span>per-layer std (log)</span><span>• output ■ gradient</span></div>
    <canvas class="layers" width="636" height="240"></canvas></div></div>`;
  el.querySelector("button.snippet").onclick = () => showSnippet(i);
  $("runs").appendChild(el);
  return el;
}

function renderRuns(runs) {
  [...$("runs").children].forEach((el, i) => { if (i >= runs.length) el.remove(); });
  runs.forEach((run, i) => {
    const el = runPanel(i);
    el.querySelector(".label").textContent = run.label;
    const acc = run.final.test_accuracy;
    el.querySelector(".acc").textContent = run.diverged ? `diverged at step ${run.diverged_step}`
      : `test acc ${acc === null ? "–" : acc.toFixed(3)} · loss ${run.final.train_loss === null ? "–" : run.final.train_loss.toFixed(3)}`;
    const canvas = el.querySelector("canvas.contour");
    drawContours(canvas, run, points, { lines: linesFor(run, i), color: COLORS[i] });
    canvas.dataset.step = run.step;
    const a = el.querySelector("a.weights");
    a.href = `/api/sessions/${sid}/export/weights?run=${i}`; a.download = `initlab-playground-run${i}.pt`;
    const v = el.querySelector(".verdict");
    v.classList.toggle("bad", run.diagnosis.summary !== "ok");
    v.innerHTML = "";
    const b = document.createElement("b");
    b.textContent = `at step 0: ${run.diagnosis.summary}`;
    v.append(b, document.createElement("br"), run.diagnosis.message);
    drawWidths(el, run);
    drawLayers(el.querySelector("canvas.layers"), run, COLORS[i]);
  });
}

// ---------------------------------------------------------------- wiring

async function main() {
  catalog = await api("GET", "/api/catalog");
  fill($("dataset"), catalog.datasets);
  fill($("activation"), catalog.activations);
  fill($("optimizer"), catalog.optimizers);
  fill($("width"), WIDTHS);
  fill($("lr"), LRS, fmt);
  fill($("batch_size"), BATCHES, (b) => String(b));
  $("upload-limits").textContent = `at most ${catalog.upload.max_rows} rows (${uploadKiB()} KiB)`;
  for (const id of ["dataset", "noise", "n", "data_seed", "depth", "width", "activation", "optimizer", "lr", "weight_decay", "batch_size", "seed"]) {
    $(id).addEventListener("change", changed);
    $(id).addEventListener("input", outputs);
  }
  $("speed").addEventListener("input", outputs);
  $("speed").addEventListener("change", changed);
  $("add-scheme").onclick = () => {
    const used = new Set(schemes.map((s) => s.name));
    const next = ["xavier_uniform", "default", "constant", "he_normal", "normal"].find((n) => !used.has(n)) || "default";
    schemes.push({ name: next, params: {} });
    renderSchemes(); changed();
  };
  for (const [title, q] of PRESETS) {
    const b = document.createElement("button");
    b.textContent = title;
    b.onclick = async () => {
      const doc = await api("POST", `/api/sessions/${sid}/settings?${q}`).catch((e) => showError(e.message));
      if (doc) { showSettings(doc.settings); history.replaceState(null, "", `?${doc.query}`); render(doc); }
    };
    $("presets").appendChild(b);
  }
  $("play").onclick = () => control(state && state.playing ? "pause" : "play");
  $("step").onclick = () => control("step");
  $("reset").onclick = () => control("reset");
  $("new-seed").onclick = () => { $("seed").value = crypto.getRandomValues(new Uint32Array(1))[0] % 2 ** 31; changed(); };
  $("upload-file").onchange = async () => {
    const f = $("upload-file").files[0];
    if (!f) return;
    if (f.size > catalog.upload.max_bytes) showError(`${f.name} is ${Math.round(f.size / 1024)} KiB; the playground takes files up to ${uploadKiB()} KiB.`);
    else await upload(await f.text());
    $("upload-file").value = "";
  };
  $("upload-paste").onclick = () => upload($("upload-text").value);
  $("lines").onchange = $("lines-layer").onchange = () => { units = {}; if (state) render(state); };
  $("snippet-close").onclick = () => { $("snippet-box").hidden = true; };
  $("snippet-copy").onclick = () => navigator.clipboard && navigator.clipboard.writeText($("snippet-text").textContent);
  $("drawer-toggle").onclick = () => document.body.classList.toggle("drawer-open");
  $("drawer-close").onclick = () => document.body.classList.remove("drawer-open");
  let resized = null;
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(() => state && render(state), 150); });
  // space plays and pauses, except where it types a space or presses what has the focus
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (e.code !== "Space" || ["INPUT", "SELECT", "TEXTAREA", "BUTTON", "A", "SUMMARY"].includes(t.tagName) || t.isContentEditable) return;
    e.preventDefault(); $("play").click();
  });
  document.addEventListener("visibilitychange", () => {
    if (!sid) return;
    if (document.hidden && state && state.playing) { pausedByHiding = true; control("pause"); wantPlaying = true; }
    else if (!document.hidden && pausedByHiding) { pausedByHiding = false; control("play"); }
  });
  window.addEventListener("pagehide", () => { if (sid) fetch(`/api/sessions/${sid}`, { method: "DELETE", keepalive: true }); });
  await start(location.search.slice(1));
}

main().catch((err) => showError(`The playground could not start: ${err.message}`));
