// initlab playground: the drawings. Each function draws one picture on a canvas from what the server sent;
// none talks to the server or keeps state of its own (playground.js does both).
"use strict";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
const LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
const FONT = "20px system-ui, sans-serif";   // canvas text, drawn at twice the CSS size

// ---------------------------------------------------------------- ticks: round numbers only

function tickText(t) {
  if (t === 0) return "0";
  const a = Math.abs(t);
  if (a >= 1e4 || a < 1e-3) { const e = Math.round(Math.log10(a)); return Math.abs(t - 10 ** e) < 1e-9 * a ? `1e${e}` : t.toExponential(0); }
  return String(+t.toPrecision(3));
}

// about n round ticks (1, 2 or 5 times a power of ten apart) between lo and hi
function niceTicks(lo, hi, n = 5) {
  const raw = (hi - lo) / Math.max(n, 1), mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) || 10 * mag;
  const out = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) out.push(+t.toPrecision(12));
  return out;
}

// round ticks on a log axis from 10^lo to 10^hi: every decade (or every k-th), with 2 and 5 between when few
function logTicks(lo, hi) {
  const span = hi - lo, out = [];
  const every = Math.max(1, Math.ceil(span / 6));
  for (let e = Math.ceil(lo); e <= Math.floor(hi); e += every) out.push(10 ** e);
  if (span <= 2.5) {
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const k of [2, 5]) { const t = k * 10 ** e; if (Math.log10(t) >= lo && Math.log10(t) <= hi) out.push(t); }
    }
  }
  return out.sort((a, b) => a - b).map((t) => +t.toPrecision(6));
}

function logRange(values) {
  const v = values.filter((x) => x !== null && x > 0);
  if (!v.length) return null;
  let lo = Math.floor(Math.log10(Math.min(...v))), hi = Math.ceil(Math.log10(Math.max(...v)));
  if (hi - lo < 2) { lo -= 1; hi += 1; }
  return [lo, hi];
}

// A canvas drawn at twice its CSS width, as wide as its box: resized (and so cleared) only when the box changes.
function fitCanvas(canvas, cssHeight) {
  const w = Math.max(200, Math.round(canvas.parentElement.clientWidth - 2));
  if (+canvas.dataset.cssw !== w) {
    canvas.dataset.cssw = w;
    canvas.style.width = "100%"; canvas.style.height = `${cssHeight}px`;
    canvas.width = 2 * w; canvas.height = 2 * cssHeight;
  }
  return canvas.getContext("2d");
}

function message(ctx, W, H, lines, color = "#6b7280") {
  ctx.font = FONT; ctx.fillStyle = color; ctx.textAlign = "center"; ctx.textBaseline = "middle";
  lines.forEach((line, k) => ctx.fillText(line, W / 2, H / 2 + (k - (lines.length - 1) / 2) * 26));
}

// ---------------------------------------------------------------- the probability map

function shade(p) {  // the chapter's light grey fill, banded at tenths (matplotlib Greys, vmax 1.6)
  const band = Math.min(Math.floor(p * 10), 9) / 10 + 0.05;
  return Math.round(255 - 125 * band);
}

// opts.lines: null, or {layer: 1, neurons} (first-layer lines) or {layer: l, units} (curves at 0)
function drawContours(canvas, run, points, opts = {}) {
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
  let distinct = null;
  if (opts.lines && opts.lines.neurons) distinct = neuronLines(ctx, opts.lines.neurons, px, py, points, opts.color);
  else if (opts.lines && opts.lines.units) distinct = unitCurves(ctx, opts.lines, px, py, points, opts.color);
  canvas.dataset.lines = distinct === null ? "" : String(distinct);
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

// ---------------------------------------------------------------- each neuron's line

// A line w.x + b = 0 up to its scale and sign, rounded: equal keys are the same line.
function lineKey(w1, w2, b) {
  const n = Math.hypot(w1, w2, b);
  if (!(n > 0) || !(Math.hypot(w1, w2) > 1e-9 * n)) return null;  // no line: w = 0
  let v = [w1 / n, w2 / n, b / n];
  const first = v.find((c) => Math.abs(c) > 1e-6);
  if (first < 0) v = v.map((c) => -c);
  return v.map((c) => c.toFixed(3)).join(",");
}

// The first layer's units as lines w.x + b = 0 over the map; returns how many distinct lines there are.
function neuronLines(ctx, neurons, px, py, points, color) {
  const [x0, y0] = points.lo, [x1, y1] = points.hi;
  const keys = new Set();
  ctx.save(); ctx.strokeStyle = color; ctx.globalAlpha = 0.8; ctx.lineWidth = 3; ctx.setLineDash([14, 6]);
  neurons.w.forEach(([w1, w2], k) => {
    const b = neurons.b[k];
    if (w1 === null || w2 === null || b === null) return;
    const key = lineKey(w1, w2, b);
    if (key === null) return;
    keys.add(key);
    // the two ends where the line leaves the box
    let a, c;
    if (Math.abs(w2) >= Math.abs(w1)) { a = [x0, -(w1 * x0 + b) / w2]; c = [x1, -(w1 * x1 + b) / w2]; }
    else { a = [-(w2 * y0 + b) / w1, y0]; c = [-(w2 * y1 + b) / w1, y1]; }
    ctx.beginPath(); ctx.moveTo(px(a[0]), py(a[1])); ctx.lineTo(px(c[0]), py(c[1])); ctx.stroke();
  });
  ctx.restore();
  return keys.size;
}

// A later layer's units as curves where their pre-activation is 0; returns how many distinct curves.
function unitCurves(ctx, data, px, py, points, color) {
  if (!data.units) return 0;
  const G = data.grid, [x0, y0] = points.lo, [x1, y1] = points.hi;
  const gx = (j) => px(x0 + (j / (G - 1)) * (x1 - x0)), gy = (i) => py(y0 + (i / (G - 1)) * (y1 - y0));
  const keys = new Set();
  ctx.save(); ctx.strokeStyle = color; ctx.globalAlpha = 0.8; ctx.lineWidth = 3; ctx.setLineDash([14, 6]);
  for (const values of data.units) {
    const segs = marchingSquares(values, G, 0);
    if (!segs.length) continue;
    const scale = Math.max(...values.map(Math.abs)) || 1;
    const sign = Math.sign(values.find((v) => Math.abs(v) > 1e-6 * scale) || 1);
    keys.add(values.map((v) => ((sign * v) / scale).toFixed(2)).join(","));
    ctx.beginPath();
    for (const [a, b] of segs) { ctx.moveTo(gx(a[0]), gy(a[1])); ctx.lineTo(gx(b[0]), gy(b[1])); }
    ctx.stroke();
  }
  ctx.restore();
  return keys.size;
}

// ---------------------------------------------------------------- effective width, per-layer std

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

// The layers whose std is 0 (in one series at least, and above 0 in none): all units equal, as a constant start makes them.
function zeroNote(names, series) {
  const zero = names.filter((_, k) => series.every((s) => s[k] === 0 || s[k] === null) && series.some((s) => s[k] === 0));
  return zero.length ? zero : null;
}

// Per layer on a log scale: series = [{values, color, dash, marker}]; returns false when empty.
function logLayerChart(ctx, W, H, names, series, empty) {
  const L = 84, B = 36, T = 12, R = 16;
  ctx.clearRect(0, 0, W, H);
  const range = logRange(series.flatMap((s) => s.values));
  if (!range) { message(ctx, W, H, empty); return false; }
  const [lo, hi] = range, n = names.length;
  const X = (k) => L + (n === 1 ? 0.5 : k / (n - 1)) * (W - L - R);
  const Y = (v) => T + (1 - (Math.log10(v) - lo) / (hi - lo)) * (H - T - B);
  ctx.font = FONT; ctx.fillStyle = "#6b7280"; ctx.strokeStyle = "#eceff4"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const t of logTicks(lo, hi)) {
    ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(W - R, Y(t)); ctx.stroke();
    ctx.fillText(tickText(t), L - 8, Y(t));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  names.forEach((name, k) => ctx.fillText(name, X(k), H - B + 8));
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 3; ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    let open = false;
    s.values.forEach((v, k) => {
      if (v === null || v <= 0) { open = false; return; }
      if (open) ctx.lineTo(X(k), Y(v)); else ctx.moveTo(X(k), Y(v));
      open = true;
    });
    ctx.stroke(); ctx.setLineDash([]);
    if (!s.marker) continue;
    s.values.forEach((v, k) => {
      if (v === null || v <= 0) return;
      ctx.beginPath();
      if (s.marker === "dot") ctx.arc(X(k), Y(v), 6, 0, 2 * Math.PI); else ctx.rect(X(k) - 6, Y(v) - 6, 12, 12);
      ctx.fill();
    });
  }
  return true;
}

const EMPTY_CONSTANT = ["every std here is 0, so a log scale has nothing to show:",
  "a constant start gives all units of a layer the same output", "(and zero weights pass no signal or gradient)"];

// Why a chart of per-layer stds has nothing to draw, as {kind, lines}: its run diverged (its last
// statistics are NaN or inf), every std is 0 (a constant start), or no std is finite.
function emptyWhy(values, run) {
  if (run && run.diverged) {
    return { kind: "diverged", lines: [`diverged at step ${run.diverged_step}: its last statistics are NaN or inf,`,
      "so a log scale has nothing to show"] };
  }
  if (values.length && values.every((v) => v === 0)) return { kind: "zero", lines: EMPTY_CONSTANT };
  return { kind: "nonfinite", lines: ["no finite std to show (NaN or inf)"] };
}

function note(ctx, lines) {
  ctx.font = FONT; ctx.fillStyle = "#8a1c1c"; ctx.textAlign = "left"; ctx.textBaseline = "top";
  lines.forEach((line, k) => ctx.fillText(line, 90, 14 + 26 * k));
}

// A run's per-layer stds now (output and gradient); dataset.empty says why nothing is drawn, dataset.zero
// which layers have std 0.
function drawLayers(canvas, run, color) {
  const ctx = canvas.getContext("2d"), layers = run.layers;
  const why = emptyWhy([...layers.preact_std, ...layers.grad_std], run);
  const drawn = logLayerChart(ctx, canvas.width, canvas.height, layers.names, [
    { values: layers.preact_std, color, marker: "dot" },
    { values: layers.grad_std, color, dash: [8, 6], marker: "square" }], why.lines);
  const zero = drawn && !run.diverged && zeroNote(layers.names, [layers.preact_std, layers.grad_std]);
  if (zero) {  // why points are missing: a log scale has no 0 (all units equal, as a constant start makes them)
    note(ctx, [`std 0 at ${zero.join(", ")}: no point on a log scale`, "(every unit the same, as a constant start makes them)"]);
  } else if (drawn && run.diverged && [...layers.preact_std, ...layers.grad_std].includes(null)) {
    note(ctx, [`diverged at step ${run.diverged_step}: a layer without a point was NaN or inf`]);
  }
  canvas.dataset.empty = drawn ? "" : why.kind;
  canvas.dataset.zero = zero ? zero.join(",") : "";
}

// "Initialization by depth": per layer at step 0, measured (solid) and the mean-field prediction (dashed;
// the server sends none where the theory does not apply, a constant start, and says why: theory_note).
function drawDepth(canvas, runs, key) {
  const ctx = fitCanvas(canvas, 190);
  const names = runs.length ? runs[0].initial_layers.names : [];
  const series = runs.flatMap((run, i) => [
    { values: run.initial_layers[key], color: COLORS[i], marker: "dot" },
    { values: run.initial_layers[`predicted_${key}`] || [], color: COLORS[i], dash: [10, 8] }]);
  const why = emptyWhy(runs.flatMap((run) => run.initial_layers[key]), null);
  const drawn = logLayerChart(ctx, canvas.width, canvas.height, names, series, why.lines);
  canvas.dataset.empty = drawn ? "" : why.kind;
  canvas.dataset.predicted = runs.map((run) => (run.initial_layers[`predicted_${key}`] || []).some((v) => v !== null) ? 1 : 0).join(",");
}

// ---------------------------------------------------------------- loss and accuracy over the steps

function lineChart(canvas, runs, keys, opts) {
  const ctx = fitCanvas(canvas, 200);
  const W = canvas.width, H = canvas.height, L = 80, B = 44, T = 12, R = 20;
  ctx.clearRect(0, 0, W, H);
  const steps = runs.flatMap((r) => r.history.step);
  const xmax = Math.max(10, ...steps);
  let lo = opts.lo, hi = opts.hi;
  const tr = opts.log ? (v) => Math.log10(v) : (v) => v;
  if (opts.log) {
    const vals = runs.flatMap((r) => keys.flatMap((k) => r.history[k])).filter((v) => v !== null && v > 0);
    if (!vals.length) { message(ctx, W, H, ["no finite loss yet"]); return; }
    [lo, hi] = [Math.floor(Math.log10(Math.min(...vals)) * 2) / 2, Math.ceil(Math.log10(Math.max(...vals)) * 2) / 2];
    hi = Math.min(hi, 1);  // losses above 10 (a diverging run) leave the top of the chart
    lo = Math.min(lo, hi - 0.5);
  }
  const X = (s) => L + (s / xmax) * (W - L - R);
  const Y = (v) => T + (1 - (tr(v) - lo) / (hi - lo)) * (H - T - B);
  ctx.font = FONT; ctx.fillStyle = "#6b7280"; ctx.strokeStyle = "#eceff4"; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  const ticks = opts.log ? logTicks(lo, hi) : niceTicks(lo, hi, 4);
  for (const t of ticks) {
    ctx.beginPath(); ctx.moveTo(L, Y(t)); ctx.lineTo(W - R, Y(t)); ctx.stroke();
    ctx.fillText(tickText(t), L - 8, Y(t));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const s of niceTicks(0, xmax, Math.max(3, Math.floor(W / 220)))) ctx.fillText(tickText(s), X(s), H - B + 10);
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
}

// The legend of the shared charts, beside them (never over the data): one swatch per run.
function legend(el, runs, extra) {
  const text = runs.map((r, i) => `<span><i style="--c:${COLORS[i]}"></i></span>`).join("") + (extra ? `<span class="muted">${extra}</span>` : "");
  if (el.dataset.key !== runs.map((r) => r.label).join("|")) {
    el.innerHTML = text;
    el.querySelectorAll("span > i").forEach((i, k) => i.after(runs[k].label));
    el.dataset.key = runs.map((r) => r.label).join("|");
  }
}
