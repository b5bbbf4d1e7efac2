// Small SVG charts. Each returns a <figure> with the chart, a caption, and its numbers in a
// table (the chart's text alternative). data-count on the <svg> = marks drawn.
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f5fbf", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
const W = 460, H = 240, M = { l: 52, r: 12, t: 10, b: 34 };

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : String(c));
  return el;
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "object") return JSON.stringify(v);  // a genotype's layers, say
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  // below the digits asked for, three significant ones (0.00113 s at 2 digits showed "0",
  // while 0.000968 s showed 9.68e-4)
  if (a !== 0 && a < 10 ** -digits) return v.toPrecision(3).replace(/\.?0+$/, "");
  return v.toFixed(digits).replace(/\.?0+$/, "");
}

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo === Infinity) return [0, 1];
  // Values a float step or so apart (0.3 and 0.30000000000000004) are drawn as equal: no
  // tick step fits between them.
  if (hi - lo <= Math.max(Math.abs(lo), Math.abs(hi)) * 1e-12) {
    const d = Math.abs(lo) * 0.05 || 0.5;
    return [lo - d, hi + d];
  }
  return [lo, hi];
}

// (Halves first: values of +-1e308 are finite, their difference is not.)
function scale([d0, d1], [r0, r1]) {
  return (v) => r0 + ((v / 2 - d0 / 2) / (d1 / 2 - d0 / 2)) * (r1 - r0);
}

// Round ticks over [lo, hi], at most a few per chart whatever the floats do (a step under
// a float's resolution at that size never moved the loop on: the page hung). The span is
// taken in halves, as in scale: values of +-1e308 have ticks too.
function ticks([lo, hi], n = 5) {
  const half = hi / 2 - lo / 2;
  if (!(half > 0) || !Number.isFinite(half)) return [];
  const step = Math.pow(10, Math.floor(Math.log10(half / n) + Math.LOG10E * Math.LN2));
  const err = (n * step) / 2 / half;
  const k = err <= 0.15 ? 10 : err <= 0.35 ? 5 : err <= 0.75 ? 2 : 1;
  const st = step * k, first = Math.ceil(lo / st) * st, out = [];
  for (let i = 0; i <= 4 * n; i++) {
    const v = first + i * st;
    if (v > hi + st * 1e-9) break;
    out.push(+v.toPrecision(12));
  }
  return out;
}

// As many decimals as the step between ticks needs: close ticks never print alike.
function tickText(ts) {
  const step = ts.length > 1 ? ts[1] - ts[0] : 1;
  const digits = Math.max(0, Math.min(12, -Math.floor(Math.log10(step) + 1e-9)));
  return (t) => t.toFixed(digits);
}

// Width of a label at 10 px, over-estimated (a digit of a wide sans-serif is 6.4 px).
const textWidth = (text) => 6.5 * text.length;

// A chart's margins and scales. The left margin fits the widest y tick label, right of the
// axis title's 16 px: values that barely change need many digits, which a fixed 52 px cut
// at the left edge and ran into the axis title.
function frame(xd, yd) {
  const yt = ticks(yd), ys = tickText(yt);
  const widest = Math.max(0, ...yt.map((t) => textWidth(ys(t))));
  const m = { ...M, l: Math.min(W / 2, Math.max(M.l, Math.ceil(22 + widest))) };
  return { m, yt, ys, x: scale(xd, [m.l, W - m.r]), y: scale(yd, [H - m.b, m.t]) };
}

// xInteger: the x values are counts (trials, epochs, steps, iterations): whole ticks only.
function axes(svg, { m, x, y, yt, ys }, xd, xLabel, yLabel, xInteger = false) {
  const g = s("g", { class: "axis" });
  g.append(s("line", { x1: m.l, y1: H - m.b, x2: W - m.r, y2: H - m.b }));
  g.append(s("line", { x1: m.l, y1: m.t, x2: m.l, y2: H - m.b }));
  let xt = ticks(xd);
  if (xInteger) {
    const whole = xt.filter(Number.isInteger);
    xt = whole.length ? whole : [Math.round((xd[0] + xd[1]) / 2)];
  }
  const xs = tickText(xInteger ? [0, 1] : xt);
  for (const t of xt) {
    g.append(s("line", { x1: x(t), x2: x(t), y1: H - m.b, y2: H - m.b + 4 }));
    g.append(s("text", { x: x(t), y: H - m.b + 14, "text-anchor": "middle" }, xs(t)));
  }
  for (const t of yt) {
    g.append(s("line", { x1: m.l - 4, x2: m.l, y1: y(t), y2: y(t) }));
    g.append(s("text", { x: m.l - 6, y: y(t) + 3, "text-anchor": "end" }, ys(t)));
  }
  g.append(s("text", { x: (m.l + W - m.r) / 2, y: H - 4, "text-anchor": "middle" }, xLabel));
  g.append(s("text", { class: "y-title", x: 10, y: (m.t + H - m.b) / 2, transform: `rotate(-90 10 ${(m.t + H - m.b) / 2})`, "text-anchor": "middle" }, yLabel));
  svg.append(g);
}

function figure(id, title, svg, table, note) {
  const cap = h("figcaption", { id: `${id}-title` }, title);
  svg.setAttribute("aria-labelledby", `${id}-title`);
  return h("figure", { class: "chart", id, "data-chart": id }, cap, svg, note ? h("p", { class: "muted" }, note) : null,
    h("details", {}, h("summary", {}, "Data table"), table));
}

// Numbers right-aligned, text left-aligned (a long genotype, right-aligned in a wide table,
// sat past the card's edge and its cell looked blank), and a long text wraps.
export function dataTable(headers, rows, limit = 300) {
  const shown = rows.slice(0, limit);
  const numeric = headers.map((_, j) => shown.every((r) => r[j] == null || typeof r[j] === "number"));
  const cell = (c, j) => {
    const text = fmt(c);
    const cls = typeof c === "number" || (c == null && numeric[j]) ? "num" : text.length > 40 ? "long" : null;
    return h("td", { class: cls }, text);
  };
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((c, j) => h("th", { scope: "col", class: numeric[j] ? "num" : null }, c)))),
    h("tbody", {}, shown.length ? shown.map((r) => h("tr", {}, r.map(cell)))
      : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "None.")))),
    rows.length > limit ? h("p", { class: "muted" }, `first ${limit} of ${rows.length} rows`) : null);
}

// series: [{name, points: [[x, y], ...]}]
// xFormat: how an x value reads in the tooltips and the table (default: the number).
export function lineChart(id, title, series, { xLabel = "epoch", yLabel = "", xFormat = fmt } = {}) {
  const xs = series.flatMap((q) => q.points.map((p) => p[0]));
  const ys = series.flatMap((q) => q.points.map((p) => p[1]));
  const xd = extent(xs), yd = extent(ys);
  const f = frame(xd, yd), { x, y } = f;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img" });
  axes(svg, f, xd, xLabel, yLabel, xs.every(Number.isInteger));
  let marks = 0;
  // a line equal to an earlier one would hide it: drawn dashed, its legend names the other
  // (q.same: what makes two series the same where their points may differ, e.g. in length)
  const drawn = series.map((q) => q.same ?? JSON.stringify(q.points));
  const sameAs = drawn.map((d, i) => drawn.indexOf(d) < i ? drawn.indexOf(d) : -1);
  series.forEach((q, i) => {
    const pts = q.points.filter((p) => Number.isFinite(p[1]));
    const color = COLORS[i % COLORS.length];
    if (pts.length) {
      const dash = sameAs[i] >= 0 ? { "stroke-dasharray": `${4 + 2 * i} ${4 + 2 * i}`, "stroke-dashoffset": 3 * i } : {};
      svg.append(s("path", { class: "line", stroke: color, ...dash, d: "M" + pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("L") }));
      for (const p of pts.length <= 200 ? pts : []) svg.append(s("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.2, fill: color }, s("title", {}, `${q.name}: ${xLabel} ${xFormat(p[0])}, ${fmt(p[1])}`)));
      marks += pts.length;
    }
  });
  // the legend names the lines drawn (a series without a point, e.g. a job with no
  // completed trial, has none to name), each in its line's colour
  const named = series.map((q, i) => [q, i]).filter(([q]) => q.points.some((p) => Number.isFinite(p[1])));
  if (series.length > 1) named.forEach(([q, i], row) => {
    const name = sameAs[i] >= 0 ? `${q.name} (same as ${series[sameAs[i]].name})` : q.name;
    svg.append(s("text", { x: W - M.r - 4, y: M.t + 10 + 12 * row, "text-anchor": "end", fill: COLORS[i % COLORS.length], class: "legend" }, name));
  });
  svg.setAttribute("data-count", marks);
  const xsAll = [...new Set(xs)].sort((a, b) => a - b);
  const rows = xsAll.map((xv) => [xFormat === fmt ? xv : xFormat(xv), ...series.map((q) => (q.points.find((p) => p[0] === xv) || [])[1] ?? null)]);
  return figure(id, title, svg, dataTable([xLabel, ...series.map((q) => q.name)], rows));
}

// history: {buckets: [{start, end, min, max, count}], best_so_far: [{trial, value}], n_trials, direction}
export function historyChart(id, title, hist, metric) {
  const ys = hist.buckets.flatMap((b) => [b.min, b.max]).concat(hist.best_so_far.map((b) => b.value));
  const xd = [0, Math.max(1, hist.n_trials - 1)], yd = extent(ys);
  const f = frame(xd, yd), { x, y } = f;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img" });
  axes(svg, f, xd, "trial", metric, true);
  // each bucket: a bar from its lowest to its highest objective (a dot for a single value)
  const bw = Math.min(3, Math.max(1, ((W - f.m.l - f.m.r) / Math.max(1, hist.buckets.length)) * 0.8));
  let d = "";
  const dots = s("g", { fill: "#6f93d3" });
  for (const b of hist.buckets) {
    const xm = x((b.start + b.end) / 2).toFixed(1);
    if (b.min === b.max && hist.buckets.length <= 400) dots.append(s("circle", { cx: xm, cy: y(b.min).toFixed(1), r: 2 }, s("title", {}, `trial ${b.start}: ${fmt(b.min)}`)));
    else d += `M${xm},${(y(b.min) + 0.8).toFixed(1)} L${xm},${(y(b.max) - 0.8).toFixed(1)} `;
  }
  svg.append(s("path", { class: "band", d, "stroke-width": bw },
    s("title", {}, `${hist.buckets.length} buckets of ${hist.bucket_width} trial(s): each the lowest to highest objective`)));
  svg.append(dots);
  const best = hist.best_so_far;
  if (best.length) {
    let p = "";
    best.forEach((b, i) => { p += (i ? ` L${x(b.trial).toFixed(1)},${y(best[i - 1].value).toFixed(1)} L` : "M") + `${x(b.trial).toFixed(1)},${y(b.value).toFixed(1)}`; });
    p += ` L${x(xd[1]).toFixed(1)},${y(best[best.length - 1].value).toFixed(1)}`;
    svg.append(s("path", { class: "best", d: p }));
    for (const b of best.slice(-300)) svg.append(s("circle", { cx: x(b.trial), cy: y(b.value), r: 2.5, fill: "#b3261e" }, s("title", {}, `best so far: trial ${b.trial}, ${fmt(b.value)}`)));
  }
  svg.setAttribute("data-count", hist.buckets.length + best.length);
  const note = `${hist.n_trials} trials; ${hist.buckets.length} buckets of ${hist.bucket_width} (blue: lowest..highest objective), red: best so far (${hist.direction}).`;
  return figure(id, title, svg, dataTable(["trial", "best so far"], best.map((b) => [b.trial, b.value])), note);
}

export function barChart(id, title, items) {
  const bh = 20, height = M.t + items.length * bh + 20, left = 150;
  const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, class: "plot", role: "img" });
  const max = Math.max(1e-12, ...items.map((i) => i.value));
  items.forEach((it, i) => {
    const w = ((W - left - 40) * it.value) / max;
    svg.append(s("text", { x: left - 6, y: M.t + i * bh + 13, "text-anchor": "end" }, it.name.length > 26 ? `${it.name.slice(0, 25)}…` : it.name, s("title", {}, it.name)));
    svg.append(s("rect", { x: left, y: M.t + i * bh + 2, width: Math.max(1, w), height: bh - 6, fill: COLORS[0] }, s("title", {}, `${it.name}: ${fmt(it.value)}`)));
    svg.append(s("text", { x: left + w + 4, y: M.t + i * bh + 13 }, fmt(it.value, 3)));
  });
  svg.setAttribute("data-count", items.length);
  return figure(id, title, svg, dataTable(["name", "value"], items.map((i) => [i.name, i.value])));
}

// pc: {columns: [{name, kind, labels, min, max}], rows: [{trial, top, values, objective}], metric}
export function parallelChart(id, title, pc) {
  // the objective first, as Optuna draws it: last, it lay beyond a narrow card's edge, to be
  // found only by scrolling sideways (the dashboard probe)
  const cols = [{ name: pc.metric, kind: "float" }, ...pc.columns];
  const rowsV = pc.rows.map((r) => [r.objective, ...r.values]);
  const width = Math.max(W, 70 * cols.length + 60), top = 28, bottom = H - 20;
  // never drawn below its natural size (many axes shrank its labels to 5 px): the card
  // scrolls sideways instead
  const svg = s("svg", { viewBox: `0 0 ${width} ${H}`, class: "plot", role: "img", style: `min-width: ${width}px` });
  const xs = cols.map((_, i) => 40 + (i * (width - 80)) / Math.max(1, cols.length - 1));
  const domains = cols.map((c, i) => (c.kind === "choice" ? [0, Math.max(1, c.labels.length - 1)] : extent(rowsV.map((r) => r[i]))));
  const ys = domains.map((d) => scale(d, [bottom, top]));
  const objs = pc.rows.map((r) => r.objective), [olo, ohi] = extent(objs);
  for (const [k, r] of pc.rows.entries()) {
    const v = rowsV[k];
    const pts = v.map((val, i) => (val === null ? null : `${xs[i].toFixed(1)},${ys[i](val).toFixed(1)}`)).filter(Boolean);
    const t = (r.objective - olo) / (ohi - olo || 1), good = pc.direction === "maximize" ? t : 1 - t;
    svg.append(s("polyline", { class: r.top ? "pc top" : "pc", points: pts.join(" "), stroke: `hsl(${Math.round(220 - 200 * good)},70%,45%)` }, s("title", {}, `trial ${r.trial}: ${fmt(r.objective)}`)));
  }
  cols.forEach((c, i) => {
    svg.append(s("line", { x1: xs[i], x2: xs[i], y1: top, y2: bottom, stroke: "#444" }));
    svg.append(s("text", { x: xs[i], y: 12, "text-anchor": "middle", class: "pc-label" }, c.name.slice(0, 14), s("title", {}, c.name)));
    // labels over the lines stay readable (a white halo); a number axis shows its range
    const label = (text, y, full) => svg.append(s("text", { x: xs[i] + 3, y: y + 3, "font-size": 8, class: "pc-label" }, text, full ? s("title", {}, full) : null));
    // a choice axis names as many of its choices as fit 10 px apart, always the first and the
    // last (the rest are in the table below)
    if (c.kind === "choice") for (const j of shownChoices(c.labels.length, (bottom - top) / 10)) label(String(c.labels[j]).slice(0, 12), ys[i](j), String(c.labels[j]));
    else for (const v of domains[i]) label(fmt(v, 3), ys[i](v));
  });
  svg.setAttribute("data-count", pc.rows.length);
  const headers = ["trial", ...cols.map((c) => c.name)];
  const rows = pc.rows.map((r, k) => [r.trial, ...rowsV[k].map((v, i) => (cols[i].kind === "choice" && v !== null ? cols[i].labels[v] : v))]);
  return figure(id, title, svg, dataTable(headers, rows, 100), `${pc.rows.filter((r) => r.top).length} best trials (bold) and ${pc.rows.filter((r) => !r.top).length} evenly spaced others.`);
}

// Indices of n choices to label where at most room labels fit: every k-th, and the last.
function shownChoices(n, room) {
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(room))));
  const shown = [];
  for (let j = 0; j < n; j += every) shown.push(j);
  if (shown[shown.length - 1] !== n - 1) {
    if (shown.length > 1 && n - 1 - shown[shown.length - 1] < every) shown.pop();
    shown.push(n - 1);
  }
  return shown;
}

// tl: {workers: [{worker, trials: [{trial, state, start, end}]}]}
// PRUNED (stopped early, or infeasible: not counted) was drawn in FAIL's red
const TIMELINE_FILL = { COMPLETE: "#1f5fbf", RUNNING: "#f0b400", PRUNED: "#8c8c8c", FAIL: "#b3261e" };

export function timelineChart(id, title, tl) {
  const all = tl.workers.flatMap((w) => w.trials);
  const t = (iso) => Date.parse(iso);
  const lo = Math.min(...all.map((r) => t(r.start))), hi = Math.max(...all.map((r) => (r.end ? t(r.end) : t(r.start))));
  // a long name (a Ray worker's) keeps its end, marked cut, and is whole on hover
  const names = tl.workers.map((w) => (w.worker.length > 18 ? `…${w.worker.slice(-17)}` : w.worker));
  const lane = 22, height = M.t + tl.workers.length * lane + 30, left = Math.max(110, Math.ceil(10 + Math.max(...names.map(textWidth))));
  const x = scale([lo, hi === lo ? lo + 1 : hi], [left, W - M.r]);
  const svg = s("svg", { viewBox: `0 0 ${W} ${height}`, class: "plot", role: "img" });
  tl.workers.forEach((w, i) => {
    svg.append(s("text", { x: left - 6, y: M.t + i * lane + 14, "text-anchor": "end", class: "worker" }, names[i], s("title", {}, w.worker)));
    for (const r of w.trials) {
      const x0 = x(t(r.start)), x1 = r.end ? x(t(r.end)) : x0 + 2;
      svg.append(s("rect", { x: x0, y: M.t + i * lane + 3, width: Math.max(1, x1 - x0), height: lane - 8, fill: TIMELINE_FILL[r.state] ?? "#b3261e", "data-state": r.state },
        s("title", {}, `trial ${r.trial} (${r.state}) on ${w.worker}: ${((x1 - x0) && r.end ? (t(r.end) - t(r.start)) / 1000 : 0).toFixed(2)} s`)));
    }
  });
  const states = Object.keys(TIMELINE_FILL).filter((st) => all.some((r) => r.state === st));
  svg.append(s("text", { x: W - M.r, y: height - 6, "text-anchor": "end" }, `${((hi - lo) / 1000).toFixed(1)} s shown`));
  // which colour is which state (those present)
  states.forEach((st, i) => svg.append(s("rect", { x: 4 + i * 68, y: height - 16, width: 10, height: 10, fill: TIMELINE_FILL[st] }),
    s("text", { x: 18 + i * 68, y: height - 7 }, st.toLowerCase())));
  svg.setAttribute("data-count", all.length);
  const rows = tl.workers.flatMap((w) => w.trials.map((r) => [r.trial, w.worker, r.state, r.end ? (t(r.end) - t(r.start)) / 1000 : null]));
  return figure(id, title, svg, dataTable(["trial", "worker", "state", "seconds"], rows, 200));
}

// points: [{trial, x, y, values, front, rank}]; names: each objective's (the first two drawn, every one a column of the front's table);
// a point without a value there (null: the trial has no such metric) is not drawn.
// (line: join the front's points, a staircase in two objectives; with more it is none)
export function scatterChart(id, title, points, names, { line = true } = {}) {
  const [xn, yn] = names;
  const drawn = points.filter((p) => p.x != null && p.y != null);
  const xd = extent(drawn.map((p) => p.x)), yd = extent(drawn.map((p) => p.y));
  const f = frame(xd, yd), { x, y } = f;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "plot", role: "img" });
  axes(svg, f, xd, xn, yn);
  const front = drawn.filter((p) => p.front).sort((a, b) => a.x - b.x);
  for (const p of drawn) svg.append(s("circle", { cx: x(p.x), cy: y(p.y), r: p.front ? 3.5 : 2, fill: p.front ? "#b3261e" : "#9db8e6" }, s("title", {}, `trial ${p.trial}: ${xn} ${fmt(p.x)}, ${yn} ${fmt(p.y)}`)));
  if (line && front.length > 1) svg.append(s("path", { class: "best", d: "M" + front.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join("L") }));
  svg.setAttribute("data-count", drawn.length);
  // (rank: what export and retrain take)
  const members = points.filter((p) => p.front);
  return figure(id, title, svg, dataTable(["trial", ...names, "on the front", "rank"], members.map((p) => [p.trial, ...(p.values ?? [p.x, p.y]).map((v) => v ?? "–"), "yes", p.rank ?? "–"])));
}
