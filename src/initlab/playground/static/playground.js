// initlab playground: the page. Settings live in the URL; the server trains; this draws what it streams.
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
const LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
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
async function api(method, path) {
  const r = await fetch(path, method === "GET" ? { method } : { method, headers: { "Content-Type": "application/json" } });
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

async function start(q) {
  try {
    const doc = await api("POST", `/api/sessions?${q}`);
    adopt(doc);
    showError("");
  } catch (err) {
    showError(`${err.message} (starting from the defaults instead)`);
    adopt(await api("POST", "/api/sessions"));
  }
  connect();
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

async function control(action) {
  try {
    if (action === "play" || action === "pause") wantPlaying = action === "play";
    render(await api("POST", `/api/sessions/${sid}/${action}`));
  } catch (err) { showError(err.message); }
}

// ---------------------------------------------------------------- drawing

function render(doc) {
  state = doc;
  if (doc.points) { points = doc.points; dataVersion = doc.data_version; }
  if (doc.data_version !== dataVersion) {  // new data from a change made elsewhere: fetch it
    dataVersion = doc.data_version;
    api("GET", `/api/sessions/${sid}/points`).then((p) => { points = p; }).catch(() => {});
  }
  $("step-count").textContent = doc.step;
  const play = $("play");
  play.classList.toggle("playing", doc.playing);
  play.innerHTML = doc.playing ? "❚❚ pause" : "▶ play";
  if (!doc.playing && doc.done) wantPlaying = false;
  renderRuns(doc.runs);
  renderCurves(doc.runs);
}

function runPanel(i) {
  let el = $(`run-${i}`);
  if (el) return el;
  el = document.createElement("div");
  el.className = "run"; el.id = `run-${i}`;
  el.style.setProperty("--c", COLORS[i]);
  el.innerHTML = `<h4><span class="label"></span><span class="acc"></span></h4>
    <canvas class="contour" width="636" height="636" data-testid="contour-${i}" data-step="-1"></canvas>
    <div class="verdict"></div>
    <div class="sub"><span>effective width per layer</span><span class="eff" data-testid="eff-${i}"></span></div>
    <div class="widths"></div>
    <div class="sub"><span>per-layer std (log)</span><span>• output ■ gradient</span></div>
    <canvas class="layers" width="636" height="240" style="width:318px;height:120px"></canvas>`;
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
    drawContours(canvas, run);
    canvas.dataset.step = run.step;
    const v = el.querySelector(".verdict");
    v.classList.toggle("bad", run.diagnosis.summary !== "ok");
    v.innerHTML = "";
    const b = document.createElement("b");
    b.textContent = `at step 0: ${run.diagnosis.summary}`;
    v.append(b, document.createElement("br"), run.diagnosis.message);
    drawWidths(el, run);
    drawLayers(el.querySelector("canvas.layers"), run.layers, COLORS[i]);
  });
}

function shade(p) {  // the chapter's light grey fill, banded at tenths (matplotlib Greys, vmax 1.6)
  const band = Math.min(Math.floor(p * 10), 9) / 10 + 0.05;
  return Math.round(255 - 125 * band);
}

function drawContours(canvas, run) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, G = points.grid;
  const [x0, y0] = points.lo, [x1, y1] = points.hi;
  const px = (x) => ((x - x0) / (x1 - x0)) * W, py = (y) => H - ((y - y0) / (y1 - y0)) * H;
  ctx.clearRect(0, 0, W, H);
  const p = run.grid;
  if (!p) {
    ctx.fillStyle = "#f3e0e0"; ctx.fillRect(0, 0, W, H);
  } else {
    // the fill: the grid's probability at every pixel, bilinear between grid nodes
    const img = ctx.createImageData(W, H);
    for (let r = 0; r < H; r++) {
      const gy = (1 - r / (H - 1)) * (G - 1), i0 = Math.min(Math.floor(gy), G - 2), ty = gy - i0;
      for (let c = 0; c < W; c++) {
        const gx = (c / (W - 1)) * (G - 1), j0 = Math.min(Math.floor(gx), G - 2), tx = gx - j0;
        const a = p[i0 * G + j0], b2 = p[i0 * G + j0 + 1], c2 = p[(i0 + 1) * G + j0], d = p[(i0 + 1) * G + j0 + 1];
        const v = shade((a * (1 - tx) + b2 * tx) * (1 - ty) + (c2 * (1 - tx) + d * tx) * ty);
        const k = (r * W + c) * 4;
        img.data[k] = img.data[k + 1] = img.data[k + 2] = v; img.data[k + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    const lo = Math.min(...p), hi = Math.max(...p);
    const gxs = (j) => px(x0 + (j / (G - 1)) * (x1 - x0)), gys = (i) => py(y0 + (i / (G - 1)) * (y1 - y0));
    const labels = [];
    for (const level of LEVELS) {
      if (!(lo < level && level < hi)) continue;
      const segs = marchingSquares(p, G, level);
      ctx.strokeStyle = "#1f3a93"; ctx.lineWidth = level === 0.5 ? 4 : 1.8;
      ctx.beginPath();
      for (const [a, b] of segs) { ctx.moveTo(gxs(a[0]), gys(a[1])); ctx.lineTo(gxs(b[0]), gys(b[1])); }
      ctx.stroke();
      if (segs.length) {  // one label per line, spread across the panel from level to level
        const byX = segs.map(([a, b]) => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2]).sort((u, v) => u[0] - v[0]);
        const [x, y] = byX[Math.floor((byX.length - 1) * (0.15 + 0.7 * (level * 10 - 1) / 8))];
        labels.push([level, gxs(x), gys(y)]);
      }
    }
    ctx.font = "bold 22px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const [level, x, y] of labels) {
      ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(x - 20, y - 13, 40, 26);
      ctx.fillStyle = "#1f3a93"; ctx.fillText(level.toFixed(1), x, y);
    }
    if (hi - lo < 0.1) banner(ctx, W, `p lies between ${lo.toFixed(4)} and ${hi.toFixed(4)} everywhere`, "#333");
  }
  for (let k = 0; k < points.x.length; k++) {
    const [x, y] = points.x[k];
    ctx.beginPath(); ctx.arc(px(x), py(y), 5, 0, 2 * Math.PI);
    ctx.fillStyle = points.y[k] ? "#000" : "#fff"; ctx.fill();
    ctx.lineWidth = 1.2; ctx.strokeStyle = "#000"; ctx.stroke();
  }
  if (!p) banner(ctx, W, run.diverged ? `diverged at step ${run.diverged_step}: no probabilities to draw` : "no probabilities", "#a00000");
}

function banner(ctx, W, text, color) {
  ctx.font = "22px system-ui, sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
  const w = ctx.measureText(text).width + 24;
  ctx.fillStyle = "rgba(255,255,255,0.9)"; ctx.fillRect(W / 2 - w / 2, 14, w, 36);
  ctx.fillStyle = color; ctx.fillText(text, W / 2, 32);
}

// segments of the level set of p (G x G, row i = y) at `level`, in grid coordinates [j, i]
function marchingSquares(p, G, level) {
  const segs = [];
  const at = (i, j) => p[i * G + j];
  const lerp = (a, b) => (level - a) / (b - a);
  for (let i = 0; i < G - 1; i++) {
    for (let j = 0; j < G - 1; j++) {
      const a = at(i, j), b = at(i, j + 1), c = at(i + 1, j + 1), d = at(i + 1, j);
      const pts = [];
      if ((a < level) !== (b < level)) pts.push([j + lerp(a, b), i]);
      if ((b < level) !== (c < level)) pts.push([j + 1, i + lerp(b, c)]);
      if ((d < level) !== (c < level)) pts.push([j + lerp(d, c), i + 1]);
      if ((a < level) !== (d < level)) pts.push([j, i + lerp(a, d)]);
      if (pts.length === 2) segs.push(pts);
      else if (pts.length === 4) { segs.push([pts[0], pts[1]]); segs.push([pts[2], pts[3]]); }
    }
  }
  return segs;
}

function drawWidths(el, run) {
  const box = el.querySelector(".widths");
  const eff = el.querySelector(".eff");
  if (!run.widths) { box.innerHTML = ""; eff.textContent = "diverged"; return; }
  eff.textContent = run.widths.map((w) => w.effective).join(" · ") + ` of ${run.widths[0].width}`;
  if (box.children.length !== run.widths.length) {
    box.innerHTML = run.widths.map(() => "<div class='bar'><span></span><i></i></div>").join("");
  }
  run.widths.forEach((w, k) => {
    const bar = box.children[k];
    bar.title = `${w.layer}: ${w.effective} distinct of ${w.width} neurons`;
    bar.querySelector("span").textContent = w.effective;
    bar.querySelector("i").style.height = `${(100 * w.effective) / w.width}%`;
  });
}

function logRange(values) {
  const v = values.filter((x) => x !== null && x > 0);
  if (!v.length) return [1e-3, 1];
  let lo = Math.log10(Math.min(...v)), hi = Math.log10(Math.max(...v));
  lo = Math.floor(lo); hi = Math.ceil(hi);
  if (hi - lo < 2) { lo -= 1; hi += 1; }
  return [lo, hi];
}

function drawLayers(canvas, layers, color) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 70, B = 36, T = 10, R = 16;
  ctx.clearRect(0, 0, W, H);
  const [lo, hi] = logRange([...layers.preact_std, ...layers.grad_std]);
  const n = layers.names.length;
  const X = (k) => L + (n === 1 ? 0.5 : k / (n - 1)) * (W - L - R);
  const Y = (v) => T + (1 - (Math.log10(v) - lo) / (hi - lo)) * (H - T - B);
  ctx.font = "20px system-ui, sans-serif"; ctx.fillStyle = "#6b7280"; ctx.strokeStyle = "#eceff4"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const every = Math.max(1, Math.ceil((hi - lo) / 5));
  for (let e = lo; e <= hi; e += every) {
    ctx.beginPath(); ctx.moveTo(L, Y(10 ** e)); ctx.lineTo(W - R, Y(10 ** e)); ctx.stroke();
    ctx.fillText(`1e${e}`, L - 8, Y(10 ** e));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  layers.names.forEach((name, k) => ctx.fillText(name, X(k), H - B + 8));
  for (const [key, marker, dash] of [["preact_std", "dot", []], ["grad_std", "square", [8, 6]]]) {
    const vals = layers[key];
    ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 3; ctx.setLineDash(dash);
    ctx.beginPath();
    let open = false;
    vals.forEach((v, k) => {
      if (v === null || v <= 0) { open = false; return; }
      if (open) ctx.lineTo(X(k), Y(v)); else ctx.moveTo(X(k), Y(v));
      open = true;
    });
    ctx.stroke(); ctx.setLineDash([]);
    vals.forEach((v, k) => {
      if (v === null || v <= 0) return;
      ctx.beginPath();
      if (marker === "dot") ctx.arc(X(k), Y(v), 6, 0, 2 * Math.PI); else ctx.rect(X(k) - 6, Y(v) - 6, 12, 12);
      ctx.fill();
    });
  }
}

function renderCurves(runs) {
  lineChart($("loss-chart"), runs, ["train_loss", "test_loss"], { log: true });
  lineChart($("acc-chart"), runs, ["train_accuracy", "test_accuracy"], { lo: 0.4, hi: 1 });
}

function lineChart(canvas, runs, keys, opts) {
  const ratio = 2;
  if (canvas.dataset.scaled !== "1") {
    canvas.style.width = `${canvas.width}px`; canvas.style.height = `${canvas.height}px`;
    canvas.width *= ratio; canvas.height *= ratio; canvas.dataset.scaled = "1";
  }
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 80, B = 44, T = 12, R = 20;
  ctx.clearRect(0, 0, W, H);
  const steps = runs.flatMap((r) => r.history.step);
  const xmax = Math.max(10, ...steps);
  let lo = opts.lo, hi = opts.hi;
  const tr = opts.log ? (v) => Math.log10(v) : (v) => v;
  if (opts.log) {
    const vals = runs.flatMap((r) => keys.flatMap((k) => r.history[k])).filter((v) => v !== null && v > 0);
    [lo, hi] = vals.length ? [Math.floor(Math.log10(Math.min(...vals)) * 2) / 2, Math.ceil(Math.log10(Math.max(...vals)) * 2) / 2] : [-1, 0];
    hi = Math.min(hi, 1);  // losses above 10 (a diverging run) leave the top of the chart
    lo = Math.min(lo, hi - 0.5);
  }
  const X = (s) => L + (s / xmax) * (W - L - R);
  const Y = (v) => T + (1 - (tr(v) - lo) / (hi - lo)) * (H - T - B);
  ctx.font = "20px system-ui, sans-serif"; ctx.fillStyle = "#6b7280"; ctx.strokeStyle = "#eceff4"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const ticks = opts.log ? [] : [0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
  if (opts.log) {
    const every = hi - lo <= 3 ? 0.5 : Math.ceil((hi - lo) / 5);
    for (let e = Math.ceil(lo / every) * every; e <= hi; e += every) ticks.push(10 ** e);
  }
  for (const t of ticks) {
    ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(W - R, Y(t)); ctx.stroke();
    ctx.fillText(t < 0.01 || t >= 1e4 ? t.toExponential(0) : fmt(t.toPrecision(2)), L - 8, Y(t));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (let k = 0; k <= 4; k++) ctx.fillText(String(Math.round((k / 4) * xmax)), X((k / 4) * xmax), H - B + 10);
  runs.forEach((run, i) => {
    keys.forEach((key, j) => {
      ctx.strokeStyle = COLORS[i]; ctx.lineWidth = 3; ctx.setLineDash(j ? [10, 8] : []);
      ctx.beginPath();
      let open = false;
      run.history.step.forEach((s, k) => {
        const v = run.history[key][k];
        if (v === null || (opts.log && v <= 0)) { open = false; return; }
        const y = Math.max(T, Math.min(H - B, Y(v)));
        if (open) ctx.lineTo(X(s), y); else ctx.moveTo(X(s), y);
        open = true;
      });
      ctx.stroke();
    });
  });
  ctx.setLineDash([]);
  ctx.textAlign = "left"; ctx.textBaseline = "top";
  runs.forEach((run, i) => {
    ctx.fillStyle = COLORS[i]; ctx.fillRect(W - 330, T + 8 + i * 26, 24, 6);
    ctx.fillStyle = "#1d2330"; ctx.fillText(run.label, W - 298, T + i * 26);
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
  document.addEventListener("keydown", (e) => {
    if (e.code === "Space" && !["INPUT", "SELECT"].includes(e.target.tagName)) { e.preventDefault(); $("play").click(); }
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
