// The dashboard: a hash-routed single page over the /api/v1 endpoints. The API key lives in
// sessionStorage and travels only in the Authorization header (the event stream too: fetch
// streaming, not EventSource).
import { h, fmt, lineChart, historyChart, barChart, parallelChart, timelineChart, scatterChart, dataTable } from "./charts.js";

const KEY = "nas_api_key";
const main = document.getElementById("main");
const JOB_STATES = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const TRIAL_STATES = ["WAITING", "RUNNING", "COMPLETE", "PRUNED", "FAIL"];
let stopLive = () => {};
// Bumped by each route(): a page whose fetch returns after the user went elsewhere sees it
// changed and neither renders nor starts live updates (it overwrote the newer page).
let navigation = 0;
function leaving() { const nav = navigation; return () => nav !== navigation; }

class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status; this.detail = detail;
  }
}

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

// The server out of reach (stopped, restarting, the network down): fetch rejects with a
// TypeError ("Failed to fetch"). A banner says so until a request is answered again; the
// pages go on asking (a page froze for good after a server restart, without a word).
class Unreachable extends Error {}
function unreachable(err) { return err instanceof Unreachable; }
const offline = h("p", { id: "offline", "aria-live": "polite", class: "offline", hidden: true },
  "The server cannot be reached (stopped or restarting?): this page keeps trying and updates once it answers.");
document.querySelector("header").after(offline);
function setOffline(down) { offline.hidden = !down; }

async function api(path, { method = "GET", body, type, raw = false, signal } = {}) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { method, body, signal, headers: headers(type ? { "Content-Type": type } : {}) });
  } catch (err) {
    if (signal?.aborted) throw err;
    setOffline(true);
    throw new Unreachable(err.message);
  }
  setOffline(false);
  if (res.status === 401) { showLogin("That API key was not accepted; enter a valid key."); throw new ApiError(401, "unauthorized"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail; } catch { /* not JSON */ }
    throw new ApiError(res.status, detail);
  }
  if (raw) return res;
  return res.status === 204 ? null : res.json();
}

function showLogin(message = "") {
  stopLive();
  sessionStorage.removeItem(KEY);
  document.getElementById("login").hidden = false;
  main.hidden = true;
  document.getElementById("signout").hidden = true;
  document.getElementById("login-error").textContent = message;
  document.getElementById("login-key").focus();
}

function hideLogin() {
  document.getElementById("login").hidden = true;
  main.hidden = false;
  document.getElementById("signout").hidden = !sessionStorage.getItem(KEY);
}

document.getElementById("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("login-key");
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = "";
  try { await api("/jobs?limit=1"); } catch { return; }
  hideLogin(); route();
});
document.getElementById("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(""); });

// (a node left out is null: replaceChildren would write it as the text "null")
function render(...nodes) { main.replaceChildren(...nodes.filter((n) => n != null)); }
// The keyboard's focus, lost to the page's body when the control it was on went away (a
// link followed, a row deleted), goes to the content, where the next Tab goes on from.
function keepFocus() {
  if (!document.activeElement || document.activeElement === document.body) main.focus({ preventScroll: true });
}
function errorBox(err) {
  const msg = err.status === 404 ? "Not found: no such job or trial, or it is not yours."
    : unreachable(err) ? "The server cannot be reached (stopped or restarting?): trying again every few seconds."
      : describe(err.detail ?? err.message);
  return h("p", { role: "alert", class: "error", "data-status": err.status ?? "" }, msg);
}
function describe(detail) {
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return String(detail);
}
// A page whose first read found no server asks again (a restarting server) while it is shown.
function retryPage(err, left) {
  if (!unreachable(err) || left()) return;
  const timer = setTimeout(() => { if (!left()) route(); }, 3000);
  stopLive = () => clearTimeout(timer);
}
// A job's best names its trial; a finished shared-weight search's is derived from the supernet.
function bestSource(best) {
  return best.trial_number != null ? `trial ${best.trial_number}` : "derived from the supernet, on the validation data";
}

function bestOf(objectives) {
  return objectives.length > 1 ? `best ${objectives[0]} (the first of ${objectives.join(", ")})` : `best ${objectives[0] ?? "objective"}`;
}
function stateTag(state) { return h("span", { class: `state state-${state}` }, state); }
// The ETA is a finishing time estimated from the progress when the job was read; it counts
// down between reads (the page redraws a job only when the job changed). From the job's start
// at first; once this page has seen the progress grow twice, from the pace between the first
// growth it saw and the last (times of this browser's clock alone): the time before (building
// the dataset and the model, or a server down until the job resumed) no longer counts as the
// search's pace. (A page opened mid-trial does not know when that trial's progress began.)
const progressSeen = new Map(); // job id -> { at, progress, grew }: the pace's starting point
// A time budget bounds it where the time is all the progress measures (the job's
// time_bound_minutes): the search ends within (1 - progress) of them, where a pace read from
// the first coarse steps said 13 min for a job of 10 (the dashboard probe).
function eta(job) {
  const minutes = job.time_bound_minutes;
  if (job.state !== "RUNNING" || !job.started_at || !(job.progress > 0)) return "–";
  const now = Date.now();
  let seen = progressSeen.get(job.id);
  if (!seen || job.progress < seen.progress || (!seen.grew && job.progress > seen.progress)) {
    seen = { at: now, progress: job.progress, grew: Boolean(seen) && job.progress > seen.progress };
    progressSeen.set(job.id, seen);
  }
  const paced = seen.grew && job.progress > seen.progress
    ? ((now - seen.at) / 1000) * (1 - job.progress) / (job.progress - seen.progress)
    : ((now - Date.parse(job.started_at)) / 1000) * (1 - job.progress) / job.progress;
  const left = minutes > 0 ? Math.min(paced, 60 * minutes * (1 - job.progress)) : paced;
  return h("span", { class: "eta", "data-finish": String(Math.round(now + 1000 * left)) }, etaText(left));
}
function etaText(left) {
  if (left < 0.5) return "any moment";
  return left < 90 ? `${Math.round(left)} s` : left < 5400 ? `${Math.round(left / 60)} min` : `${(left / 3600).toFixed(1)} h`;
}
// A running trial's seconds so far, counting up between reads (cost_s is 0 until it ends).
function elapsedText(since) { return `${Math.max(0, Math.round((Date.now() - since) / 1000))} so far (running)`; }
setInterval(() => {
  for (const el of document.querySelectorAll(".eta[data-finish]")) el.textContent = etaText((Number(el.dataset.finish) - Date.now()) / 1000);
  for (const el of document.querySelectorAll(".elapsed[data-since]")) el.textContent = elapsedText(Number(el.dataset.since));
}, 1000);
// A time the server gave (ISO 8601 with its offset) in this browser's time zone, to the second.
function when(iso) {
  if (!iso) return null;
  const d = new Date(iso), pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function progress(job) {
  const pct = Math.round(100 * job.progress);
  return h("span", {}, h("progress", { max: 100, value: pct, "aria-label": `job ${job.id} progress` }), ` ${pct}%`);
}

async function download(path, fallbackName) {
  const res = await api(path, { raw: true });
  const cd = res.headers.get("content-disposition") || "";
  const m = /filename="?([^";]+)"?/.exec(cd);
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: m ? m[1] : fallbackName });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return res;
}

// What the user chose or was told in a job's actions, by job id: the jobs list redraws a
// row whenever any listed job changes (every 2 s while one runs), and a redraw kept neither
// the export format chosen nor the last action's answer.
const actionState = new Map();
// The jobs whose running retraining a page follows (the jobs list draws a row again every
// 2 s while a job runs: one follower per job, not one per drawing).
const followedRetrainings = new Set();

// A finished job's retraining runs as a RUNNING trial of the job, which the server counts:
// while one runs it refuses another (409), so the page says it runs instead of offering the
// button, and shows itself again (after()) once the job has no RUNNING trial left.
function followRetraining(job, after) {
  if (followedRetrainings.has(job.id)) return;
  followedRetrainings.add(job.id);
  const left = leaving();
  const poll = async () => {
    if (left()) { followedRetrainings.delete(job.id); return; }
    let now;
    try { now = await api(`/jobs/${job.id}`); } catch { followedRetrainings.delete(job.id); return; }
    if ((now.trial_states?.RUNNING ?? 0) > 0) { setTimeout(poll, 3000); return; }
    followedRetrainings.delete(job.id);
    if (!left()) after();
  };
  setTimeout(poll, 3000);
}

function actions(job, after, evaluator) {
  const kept = actionState.get(job.id) || {};
  actionState.set(job.id, kept);
  const status = h("span", { role: "status", class: "muted" }, kept.status || "");
  const say = (text) => { kept.status = text; status.textContent = text; };
  // after(): what the action changed is shown again (an export changes nothing on the page);
  // ask: a confirmation first (nothing is done, and nothing said done, when declined)
  // fn may answer what to say instead of "done" (an action that only starts something)
  const act = (label, fn, cls, changes = true, ask = null) => h("button", { type: "button", class: cls, onclick: async () => {
    if (ask && !confirm(ask)) return;
    say(`${label}…`);
    try { const told = await fn(); say(`${label}: ${typeof told === "string" && told ? told : "done"}`); if (changes) after(); } catch (err) { say(`${label}: ${err.status === 404 ? "not found" : describe(err.detail ?? err.message)}`); }
  } }, label);
  // A retraining runs in the background as a trial of the job: said started, then followed
  // until it ends (a finished job's page has no live updates), and the page shown again.
  const retrain = async () => {
    const started = await api(`/jobs/${job.id}/retrain?rank=1`, { method: "POST" });
    const page = location.hash, left = leaving();
    let misses = 0;
    const follow = async () => {
      if (!sessionStorage.getItem(KEY) && document.body.dataset.auth !== "none") return; // signed out
      let t;
      try { t = await api(`/trials/${started.trial_id}`); } catch (err) {
        // gone with its job (404), signed out (401); else a passing fault: asked again
        if (err.status !== 404 && err.status !== 401 && ++misses < 30) setTimeout(follow, 2000);
        return;
      }
      misses = 0;
      if (t.state === "RUNNING") { setTimeout(follow, 2000); return; }
      const acc = t.metrics?.test_accuracy;
      say(`Retrain best: trial ${t.number} ${t.state}${acc != null ? `, test_accuracy ${fmt(acc)}` : ""}${t.error ? `: ${t.error}` : ""}`);
      if (location.hash === page) { if (left()) route(); else after(); }
    };
    setTimeout(follow, 2000);
    return `started as trial ${started.trial_number}; it runs in the background`;
  };
  // the formats the job's space exports to (a table space: json only)
  const formats = job.export_formats || [];
  const fmtSel = h("select", { "aria-label": `export format for job ${job.id}`, onchange: (e) => { kept.format = e.target.value; } },
    formats.map((f) => h("option", { value: f, selected: f === kept.format }, f)));
  // A graph format without trained weights is a 409 that offers the bare graph (untrained=true,
  // e.g. to time it): said, with a button that asks for it.
  const exportButton = () => h("button", { type: "button", onclick: async () => {
    const fmtName = fmtSel.value, path = `/jobs/${job.id}/export?format=${fmtName}&rank=1`;
    say("Export…");
    // (an architecture never retrained exports with random weights: said, as nas export and
    // the Python client say it; the page said "done" alone)
    try {
      const res = await download(path, `job${job.id}.${fmtName}`);
      say(res.headers.get("x-nas-weights") === "untrained"
        ? `Export: done, untrained: the network's weights are random (the job holds no trained weights of it)${finished && !retraining && !job.retrain_refused ? "; Retrain best, then export again for trained ones" : ""}`
        : "Export: done");
    } catch (err) {
      say(`Export: ${err.status === 404 ? "not found" : describe(err.detail ?? err.message)}`);
      if (err.status === 409 && String(err.detail).includes("untrained=true")) {
        status.append(" ", h("button", { type: "button", class: "untrained", onclick: async () => {
          try { await download(`${path}&untrained=true`, `job${job.id}-untrained.${fmtName}`); say(`Export: the untrained ${fmtName} graph downloaded`); }
          catch (e) { say(`Export: ${describe(e.detail ?? e.message)}`); }
        } }, `Download the untrained ${fmtName} graph`));
      }
    }
  } }, "Export");
  const finished = !["QUEUED", "RUNNING"].includes(job.state);
  // (a finished job's RUNNING trials are retrainings: another is refused until they end)
  const retraining = finished && (job.trial_states?.RUNNING ?? 0) > 0;
  if (retraining && job.best && !job.retrain_refused) followRetraining(job, after);
  const policy = evaluator === "rl2-meta" && job.state === "SUCCEEDED"; // its result: the policy file
  return h("span", { class: "actions" },
    finished ? null : act("Cancel", () => api(`/jobs/${job.id}/cancel`, { method: "POST" }), undefined, true,
      job.state === "QUEUED" ? `Cancel job ${job.id}? It has not started: it ends CANCELLED at once.`
        : `Cancel job ${job.id}? Its running trials stop and are recorded as failed; finished trials are kept.`),
    // The server's own rule: retrain_refused says why it would refuse (a table, few-shot tasks).
    // (nothing to retrain or export before a completed trial: the server would refuse)
    finished && job.best && !job.retrain_refused
      ? (retraining ? h("span", { class: "muted retraining", id: `retraining-${job.id}` }, "A retraining is running ")
        : act("Retrain best", retrain)) : null,
    job.best && formats.length ? fmtSel : null, " ", job.best && formats.length ? exportButton() : null,
    policy ? act("Download policy", () => download(`/jobs/${job.id}/policy`, `rl2-policy-job${job.id}.pt`), undefined, false) : null,
    " ", finished ? act("Delete", async () => {
      await api(`/jobs/${job.id}`, { method: "DELETE" });
      actionState.delete(job.id);
      if (location.hash.startsWith(`#/jobs/${job.id}`)) location.hash = "#/"; // its page is gone
      else after();
    }, "danger", false, `Delete job ${job.id} and all its trials?`) : null,
    " ", status);
}

// --- jobs page -----------------------------------------------------------------------------
const SAMPLE_SPEC = `name: nb201-random
dataset: {name: nb201-cifar10}
space: {name: nb201}
controller: {name: random}
evaluator: {name: tabular}
budget: {trials: 100}
`;

// The line of a YAML document where a field path (["space", "name"]) is written: the key
// at each level, searched below its parent's line with a deeper indent (or inline {k: v}).
export function lineOf(text, loc) {
  const lines = text.split("\n");
  const esc = (k) => k.replace(/[^\w]/g, "\\$&");
  let start = 0, indent = -1, found = -1;
  for (const key of loc) {
    if (typeof key === "number") continue; // a list index: stay at the list's key
    const k = String(key);
    if (found >= 0 && new RegExp(`[{,]\\s*${esc(k)}\\s*:`).test(lines[found])) continue; // {k: v}
    let hit = -1;
    for (let i = start; i < lines.length; i++) {
      const m = /^(\s*)(?:-\s+)?([\w.-]+)\s*:/.exec(lines[i]);
      if (!m) continue;
      if (found >= 0 && m[1].length <= indent) break; // left the parent's block
      if (m[2] === k) { hit = i; indent = m[1].length; break; }
    }
    if (hit < 0) break; // a missing field: its parent's line
    found = hit; start = hit + 1;
  }
  return found;
}

function submitForm(reload) {
  const saved = sessionStorage.getItem("nas_spec_draft") || SAMPLE_SPEC;
  const area = h("textarea", { id: "spec", name: "spec", spellcheck: "false", "aria-describedby": "spec-errors", rows: 14 }, saved);
  const errors = h("ul", { id: "spec-errors", class: "field-errors", "aria-live": "polite" });
  const result = h("p", { role: "status" });
  const form = h("form", { id: "submit-form", "aria-labelledby": "submit-title" },
    h("h2", { id: "submit-title" }, "Submit a job"),
    h("div", { class: "editor" },
      h("div", {}, h("label", { for: "spec" }, "Job spec (YAML)"), area,
        h("p", {}, h("button", { type: "submit" }, "Submit"), " ", result)),
      h("div", {}, h("h3", {}, "Problems"), errors)));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    errors.replaceChildren(); result.textContent = "Submitting…"; area.removeAttribute("aria-invalid");
    sessionStorage.setItem("nas_spec_draft", area.value);
    try {
      const job = await api("/jobs", { method: "POST", body: area.value, type: "application/yaml" });
      result.replaceChildren("Submitted: ", h("a", { href: `#/jobs/${job.id}` }, `job ${job.id} (${job.name})`));
      reload();
    } catch (err) {
      result.textContent = err.status === 422 ? "The spec has problems:" : `Not submitted (${err.status}): ${describe(err.detail ?? err.message)}`;
      if (err.status !== 422) return;
      area.setAttribute("aria-invalid", "true");
      const items = Array.isArray(err.detail) ? err.detail : [{ loc: [], msg: String(err.detail) }];
      for (const d of items) {
        const loc = (d.loc || []).filter((k) => k !== "body");
        const line = lineOf(area.value, loc);
        const jump = line >= 0 ? h("button", { type: "button", class: "jump", onclick: () => {
          const starts = area.value.split("\n").slice(0, line).reduce((n, l) => n + l.length + 1, 0);
          area.focus(); area.setSelectionRange(starts, starts + area.value.split("\n")[line].length);
        } }, `line ${line + 1}`) : null;
        errors.append(h("li", { "data-loc": loc.join(".") }, h("code", {}, loc.join(".") || "spec"), " ", jump, ": ", d.msg));
      }
    }
  });
  return form;
}

async function jobsPage(params) {
  const left = leaving();
  // (the state in any case, as the CLI takes it; an unknown one, or an offset that is no
  // whole number, was sent as is and answered by the server's validation message)
  const asked = (params.get("state") || "").toUpperCase();
  const state = JOB_STATES.includes(asked) ? asked : "";
  const rawOffset = Number(params.get("offset") || 0);
  const offset = Number.isInteger(rawOffset) && rawOffset >= 0 ? rawOffset : 0;
  const limit = 50;
  const notice = asked && !state
    ? h("p", { class: "error", role: "alert" }, `No job state "${params.get("state")}": showing all (states: ${JOB_STATES.join(", ")}).`) : null;
  const filter = h("select", { id: "job-state", onchange: (e) => { location.hash = `#/?state=${e.target.value}`; } },
    h("option", { value: "" }, "all"), JOB_STATES.map((st) => h("option", { value: st, selected: st === state }, st)));
  const tbody = h("tbody");
  const count = h("span", { class: "muted", id: "jobs-count" });
  const pager = h("div", { class: "pager" });
  const caption = h("caption", { class: "muted" }, "Your jobs, newest first");
  const table = h("div", { class: "scroll" }, h("table", { id: "jobs" },
    caption,
    h("thead", {}, h("tr", {}, ["Job", "State", "Progress", "ETA", "Best so far", "Trials", "Controller", "Space", "Dataset", "Warm start", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
    tbody));
  let timer = null, shown = null;
  const load = async () => {
    const q = new URLSearchParams({ limit, offset });
    if (state) q.set("state", state);
    const page = await api(`/dashboard/jobs?${q}`);
    if (left()) return;
    const seen = JSON.stringify(page);
    const unchanged = seen === shown; // redrawn rows would reset their controls (export format)
    shown = seen;
    clearTimeout(timer);
    const live = page.data.some(({ job }) => ["QUEUED", "RUNNING"].includes(job.state));
    // Often while a listed job runs; now and then otherwise, for jobs submitted elsewhere.
    timer = setTimeout(poll, live ? 2000 : 10000);
    if (unchanged) return;
    // (a range wherever the page is not all of them: #/?offset=3 of 6 jobs said "6 job(s)")
    count.textContent = page.data.length && page.data.length < page.count
      ? `${offset + 1}–${offset + page.data.length} of ${page.count} jobs` : `${page.count} job${page.count === 1 ? "" : "s"}`;
    // A redraw keeps the keyboard focus where it was: the same control of the same job's row.
    const active = document.activeElement, row = active?.closest?.("tr[data-job]");
    const where = row && tbody.contains(row) ? [row.dataset.job, [...row.querySelectorAll("a, button, select")].indexOf(active)] : null;
    // an admin's list holds other users' jobs: each says whose it is (a page of one other
    // user's jobs was captioned "Your jobs", their owner unsaid)
    const everyUser = Boolean(page.all_users);
    caption.textContent = everyUser ? "Jobs of every user, newest first" : "Your jobs, newest first";
    tbody.replaceChildren(...page.data.map(({ job, ...o }) => h("tr", { "data-job": job.id },
      h("td", { class: "name" }, h("a", { href: `#/jobs/${job.id}` }, `${job.id} · ${job.name}`),
        everyUser && job.owner ? h("div", { class: "muted owner" }, `by ${job.owner}`) : null),
      h("td", {}, stateTag(job.state), job.reason ? h("div", { class: "muted reason", title: job.reason }, job.reason.length > 60 ? `${job.reason.slice(0, 59)}…` : job.reason) : null,
        job.warnings?.length ? h("div", { class: "warning", title: job.warnings.join("\n") }, `⚠ ${job.warnings.length === 1 ? "a warning" : `${job.warnings.length} warnings`}: see its page`) : null),
      h("td", {}, progress(job)), h("td", {}, eta(job)),
      // (a multi-objective job's best is by its first objective: the title says so)
      // (a finished shared-weight search's best is derived from its supernet: no trial)
      h("td", { class: "num", title: job.best ? `${bestOf(o.objectives || [])}, ${bestSource(job.best)}` : "" }, job.best ? `${fmt(job.best.value)} (${job.best.trial_number != null ? `#${job.best.trial_number}` : "derived"})` : "–"),
      h("td", { class: "num" }, job.n_trials),
      h("td", {}, o.controller), h("td", {}, o.space), h("td", {}, o.dataset),
      h("td", { class: "wrap" }, o.warm_start.length ? o.warm_start.join(", ") : "–"),
      h("td", { class: "wrap" }, actions(job, load, o.evaluator)))));
    if (!page.data.length) tbody.append(h("tr", {}, h("td", { colspan: 11 }, offset && page.count ? `No jobs this far: there are ${page.count}.` : "No jobs.")));
    if (where && where[1] >= 0) tbody.querySelector(`tr[data-job="${where[0]}"]`)?.querySelectorAll("a, button, select")[where[1]]?.focus();
    keepFocus(); // (its row deleted)
    pager.replaceChildren(...[
      offset > limit ? h("a", { href: `#/?state=${state}` }, "⇤ Newest") : null,
      offset > 0 ? h("a", { href: `#/?state=${state}&offset=${Math.max(0, Math.min(offset, Math.ceil(page.count / limit) * limit) - limit)}` }, "← Newer") : null,
      offset + limit < page.count ? h("a", { href: `#/?state=${state}&offset=${offset + limit}` }, "Older →") : null].filter(Boolean));
  };
  // A failed read (the server restarting) is asked again: one failure ended the polling,
  // the list frozen until a reload. (Signed out, 401: the login stops it.)
  const poll = () => load().catch((err) => {
    if (left() || err.status === 401) return;
    clearTimeout(timer);
    timer = setTimeout(poll, 5000);
  });
  stopLive = () => clearTimeout(timer);
  render(h("h1", {}, "Jobs"),
    h("div", { class: "controls" }, h("label", { for: "job-state" }, "State", filter), count), notice,
    table, pager, submitForm(() => load()));
  try { await load(); } catch (err) {
    if (err.status === 401 || left()) return;
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 11 }, errorBox(err))));
    clearTimeout(timer);
    timer = setTimeout(poll, unreachable(err) ? 3000 : 5000);
  }
}

// --- job page ------------------------------------------------------------------------------
function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
}

async function stream(path, onEvent, signal) {
  const res = await api(path, { raw: true, signal });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
      let event = "message", data = "";
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}

// The metric columns a trials page adds: its trials' numeric metrics, in the order met.
const MAX_METRIC_COLUMNS = 12;
function addMetricNames(names, trials) {
  let added = false;
  for (const t of trials) for (const [k, v] of Object.entries(t.metrics || {})) {
    if (typeof v === "number" && !names.includes(k) && names.length < MAX_METRIC_COLUMNS) { names.push(k); added = true; }
  }
  return added;
}

// A table job's decisions as its stored spec pins them ({column, choices}), whose cells its
// trials' choice indices name (opt=adam, not 0); null for other spaces.
function tableDecisions(spec) {
  const decisions = spec?.space?.name === "table" ? spec.space.decisions : null;
  return Array.isArray(decisions) && decisions.every((d) => d && Array.isArray(d.choices)) ? decisions : null;
}

const MAX_OFFSET = 10_000_000; // the server's largest trials offset
// metricNames: the columns to start with; each page shown adds those its trials hold (a
// pruned trial's epochs_trained, a retraining's test_accuracy), and a column once shown stays.
// params: the page's address's state, sort, order and offset, which the table keeps there as
// they change (Back from a trial, a reload or a link showed trial 1 in number order again).
function trialsTable(job, metricNames, params = new URLSearchParams(), left = () => false) {
  // restored: the rows before the page the address named (its pages are not in cursors)
  const st = { state: "", sort: "number", order: "asc", limit: 25, offset: 0, after: null, cursors: [], restored: 0 };
  const askedState = (params.get("state") || "").toUpperCase();
  if (TRIAL_STATES.includes(askedState)) st.state = askedState;
  const askedSort = params.get("sort");
  if (askedSort) {
    st.sort = askedSort; // (one the job has not got: the server's answer says which it has)
    if (!["number", "objective", ...metricNames].includes(askedSort)) metricNames.push(askedSort);
  }
  if (params.get("order") === "desc") st.order = "desc";
  const askedOffset = Number(params.get("offset") || 0);
  if (Number.isInteger(askedOffset) && askedOffset > 0) { // (at most the server's limit)
    st.offset = st.restored = Math.floor(Math.min(askedOffset, MAX_OFFSET) / st.limit) * st.limit;
  }
  const choices = tableDecisions(job.spec);
  const fixedCols = choices ? 4 : 3; // the columns after the metrics'
  const rowsBefore = () => st.restored + st.cursors.length * st.limit; // rows before the page
  const keepInAddress = () => {
    const q = new URLSearchParams();
    if (st.state) q.set("state", st.state);
    if (st.sort !== "number") q.set("sort", st.sort);
    if (st.order !== "asc") q.set("order", st.order);
    if (rowsBefore()) q.set("offset", rowsBefore());
    const here = `#/jobs/${job.id}`, want = `${here}${q.size ? `?${q}` : ""}`;
    if (location.hash.split("?")[0] === here && location.hash !== want) {
      history.replaceState(history.state, "", want);
      main.dataset.route = want; // (the page is the one at the new address)
    }
  };
  const tbody = h("tbody");
  const info = h("span", { class: "muted", id: "trials-count", "aria-live": "polite" });
  const stateSel = h("select", { id: "trial-state" }, h("option", { value: "" }, "all"), TRIAL_STATES.map((x) => h("option", { value: x, selected: x === st.state }, x)));
  const sortKeys = ["number", "objective", ...metricNames];
  const sortSel = h("select", { id: "trial-sort" });
  const sortOptions = () => sortSel.replaceChildren(...sortKeys.map((k) => h("option", { value: k, selected: k === st.sort }, k)));
  sortOptions();
  const orderSel = h("select", { id: "trial-order" }, h("option", { value: "asc" }, "ascending"), h("option", { value: "desc", selected: st.order === "desc" }, "descending"));
  const prev = h("button", { type: "button", id: "trials-prev" }, "← Previous");
  const next = h("button", { type: "button", id: "trials-next" }, "Next →");
  const cols = ["number", "state", "objective", ...metricNames];
  const headRow = h("tr");
  const setSort = (key) => {
    if (st.sort === key) st.order = st.order === "asc" ? "desc" : "asc"; else { st.sort = key; st.order = key === "number" ? "asc" : "desc"; }
    sortSel.value = st.sort; orderSel.value = st.order; reset();
  };
  const heads = () => {
    // redrawn on every load: a sort button that had the focus (a keyboard user's) keeps it
    const focused = headRow.contains(document.activeElement) ? document.activeElement.dataset.sort : null;
    headRow.replaceChildren(...[...cols.map((c) => {
      const sortable = sortKeys.includes(c);
      return h("th", { scope: "col", class: c === "state" ? "" : "num", "aria-sort": st.sort === c ? (st.order === "asc" ? "ascending" : "descending") : null },
        sortable ? h("button", { type: "button", "data-sort": c, onclick: () => setSort(c) }, c) : c);
    }), h("th", { scope: "col" }, "hyperparameters"), choices ? h("th", { scope: "col" }, "architecture") : null,
    h("th", { scope: "col", class: "num" }, "seconds"), h("th", { scope: "col" }, "worker")].filter((n) => n !== null));
    if (focused) headRow.querySelector(`button[data-sort="${focused}"]`)?.focus();
  };
  let requests = 0; // only the newest request's answer is shown (an older one may come later)
  const load = async () => {
    const mine = ++requests;
    const q = new URLSearchParams({ sort: st.sort, order: st.order, limit: st.limit });
    if (st.state) q.set("state", st.state);
    if (st.after !== null) q.set("after", st.after); else if (st.offset) q.set("offset", st.offset);
    const page = await api(`/jobs/${job.id}/trials?${q}`);
    if (mine !== requests || left()) return; // (the user went elsewhere: nor the address)
    const before = metricNames.length;
    if (addMetricNames(metricNames, page.data)) {
      for (const m of metricNames.slice(before)) { sortKeys.push(m); cols.push(m); }
      sortOptions();
    }
    heads();
    tbody.replaceChildren(...page.data.map((t) => h("tr", { "data-trial": t.number },
      h("td", { class: "num" }, h("a", { href: `#/trials/${t.id}` }, t.number)),
      // a retraining (nas retrain, Retrain best) is a trial of the job too: say which
      h("td", {}, stateTag(t.state), (t.worker || "").endsWith(":retrain")
        ? h("div", { class: "muted retraining" }, t.state === "COMPLETE" ? `retraining: test_accuracy ${fmt(t.metrics?.test_accuracy)}` : "retraining") : null,
        // why it failed, without opening it (the whole text on its page)
        t.error ? h("div", { class: "muted trial-error", title: t.error }, t.error.length > 80 ? `${t.error.slice(0, 79)}…` : t.error) : null),
      h("td", { class: "num" }, fmt(t.objective)),
      metricNames.map((m) => h("td", { class: "num" }, fmt(t.metrics?.[m]))),
      h("td", {}, Object.entries(t.hparams || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(" ")),
      // a table job's row: the table's own cells (the trial's page has them too)
      choices ? h("td", { class: "cells" }, choices.map((d, i) => {
        const c = t.architecture?.choices?.[i];
        return `${d.column}=${d.choices[c] ?? c}`;
      }).join(" ")) : null,
      h("td", { class: "num", title: t.simulated ? "simulated training time (a benchmark table's, not measured here)" : null }, t.simulated ? `${fmt(t.cost_s, 2)} sim.` : fmt(t.cost_s, 2)), h("td", {}, t.worker ?? "–"))));
    // an empty page says why (its body was blank)
    if (!page.data.length) {
      const why = st.state ? `No ${st.state} trials${page.count ? " this far" : ""}.`
        : job.spec?.evaluator?.name === "rl2-meta" ? "No trials: a meta-training job trains a policy, not architectures (its curves are above)."
          : page.count ? "No trials this far." : ["QUEUED", "RUNNING"].includes(job.state) ? "No trials yet." : "No trials.";
      tbody.append(h("tr", {}, h("td", { colspan: cols.length + fixedCols, class: "muted", id: "trials-none" }, why)));
    }
    const first = rowsBefore() + 1;
    info.textContent = !page.count ? "no trials"
      : page.data.length ? `${first}–${first + page.data.length - 1} of ${page.count} trials` : `none this far: ${page.count} trials`;
    const focused = document.activeElement;
    prev.disabled = rowsBefore() === 0;
    next.disabled = first + page.data.length - 1 >= page.count;
    // a pager button disabled under the keyboard's focus (the last page reached) hands the
    // focus to the other one, which was lost to the page's body
    if (focused === next && next.disabled && !prev.disabled) prev.focus();
    if (focused === prev && prev.disabled && !next.disabled) next.focus();
    st.nextAfter = page.next_after;
    st.pageLen = page.data.length;
    keepInAddress();
  };
  const reload = () => (load().catch((err) => tbody.replaceChildren(h("tr", {}, h("td", { colspan: cols.length + fixedCols }, errorBox(err))))));
  const reset = () => { st.offset = 0; st.after = null; st.cursors = []; st.restored = 0; reload(); };
  stateSel.addEventListener("change", () => { st.state = stateSel.value; reset(); });
  sortSel.addEventListener("change", () => { st.sort = sortSel.value; reset(); });
  orderSel.addEventListener("change", () => { st.order = orderSel.value; reset(); });
  next.addEventListener("click", () => {
    st.cursors.push({ after: st.after, offset: st.offset });
    // keyset scrolling in number order (constant time at any depth); offsets otherwise
    if (st.sort === "number" && !st.state && st.nextAfter !== null && st.nextAfter !== undefined) st.after = st.nextAfter;
    else st.offset += st.limit;
    reload();
  });
  prev.addEventListener("click", () => {
    const c = st.cursors.pop();
    if (c) { st.after = c.after; st.offset = c.offset; } else if (st.restored > 0) { // (a page the address named)
      st.after = null; st.offset = st.restored = Math.max(0, st.restored - st.limit);
    }
    reload();
  });
  const el = h("section", { "aria-labelledby": "trials-title" },
    h("h2", { id: "trials-title" }, "Trials"),
    h("div", { class: "controls" },
      h("label", { for: "trial-state" }, "State", stateSel), h("label", { for: "trial-sort" }, "Sort by", sortSel),
      h("label", { for: "trial-order" }, "Order", orderSel), info),
    h("div", { class: "scroll" }, h("table", { id: "trials" }, h("thead", {}, headRow), tbody)),
    h("div", { class: "pager" }, prev, next));
  reload();
  // Live: a page that is not full gains the new rows; counts refresh.
  // Every refresh reloads the page shown: its rows' states and the total change on any page.
  el.refresh = () => reload();
  return el;
}

// MetaQNN's reward per epsilon stage (the controller's own curve, one point per stage).
function stagesChart(points) {
  const label = (i) => { const p = points[i]; return p ? `ε ${p.epsilon} (stage ${i}, ${p.models}/${p.planned} models)` : String(i); };
  // (the reward is the objective times the controller's reward_scale, 0.01 by default: an
  // accuracy of 19 % shows here as 0.19, beside the page's 19.0)
  return lineChart("curve-epsilon-stages", "MetaQNN: mean and best reward by epsilon stage (reward = objective × reward_scale)",
    ["mean_reward", "best_reward"].map((k) => ({ name: k, points: points.map((p) => [p.epoch, p[k]]) })),
    { xLabel: "stage", yLabel: "reward (objective × reward_scale)", xFormat: label });
}

function curvesCharts(curves) {
  const charts = [];
  for (const [series, points] of Object.entries(curves.epochs || {})) {
    if (series === "epsilon_stages") { charts.push(stagesChart(points)); continue; }
    // A meta-training job's points are by iteration (its point number is no epoch).
    const by = points.length && points.every((p) => typeof p.iteration === "number") ? "iteration" : "epoch";
    const x = (p) => (by === "iteration" ? p.iteration : p.epoch);
    const keys = new Set();
    for (const p of points) for (const [k, v] of Object.entries(p)) if (k !== "epoch" && k !== by && typeof v === "number") keys.add(k);
    const groups = [["mean_reward", "baseline"], ["entropy"], ["train_loss"], ["train_accuracy"]];
    const used = new Set();
    for (const g of groups) {
      const present = g.filter((k) => keys.has(k));
      if (!present.length) continue;
      present.forEach((k) => used.add(k));
      charts.push(lineChart(`curve-${series}-${present.join("-")}`, `${series}: ${present.join(", ")} per ${by}`,
        present.map((k) => ({ name: k, points: points.map((p) => [x(p), p[k]]) })), { xLabel: by, yLabel: present.join("/") }));
    }
    for (const k of keys) {
      if (used.has(k) || ["seconds", "skipped_steps", "rewards", "lr"].includes(k)) continue;
      charts.push(lineChart(`curve-${series}-${k}`, `${series}: ${k} per ${points[0]?.stage !== undefined ? "point" : by}`,
        [{ name: k, points: points.map((p) => [x(p), p[k]]) }], { xLabel: by, yLabel: k }));
    }
  }
  return charts;
}

// Figures as "name value" pairs; a figure's 95% interval (name_ci95) goes with it as ±.
function figures(values) {
  const pairs = Object.entries(values || {}).filter(([k, v]) => typeof v === "number" && !(k.endsWith("_ci95") && `${k.slice(0, -5)}` in values));
  return pairs.map(([k, v]) => `${k} ${fmt(v)}${typeof values[`${k}_ci95`] === "number" ? ` ± ${fmt(values[`${k}_ci95`])}` : ""}`).join(", ");
}
// What a finished job measured on data its search never saw: the best architecture's
// final_metrics (a benchmark table's test accuracy, meta-test tasks' scores) and each
// retraining's figures (final:, Retrain best: trained from scratch, scored on the test
// split). Not what the search ranked by, and said so.
const RETRAINED = ["test_accuracy", "train_loss", "params", "flops", "train_seconds"];
function heldOut(summary, ranked) {
  const rows = [];
  const best = summary?.best;
  if (best && figures(best.final_metrics)) rows.push([`best architecture${best.trial != null ? ` (trial ${best.trial})` : ""}`, figures(best.final_metrics)]);
  for (const f of summary?.final || []) {
    const kept = Object.fromEntries(RETRAINED.filter((k) => k in f).map((k) => [k, f[k]]));
    rows.push([`retrained rank ${(f.rank ?? 0) + 1}${f.trial != null ? ` (trial ${f.trial})` : ""}`, figures(kept)]);
  }
  if (!rows.length) return null;
  return h("div", { id: "job-held-out" },
    h("table", { class: "held-out" }, h("tbody", {}, rows.map(([what, text]) => h("tr", {}, h("th", { scope: "row" }, what), h("td", {}, text))))),
    h("span", { class: "muted" }, `Measured after the search on held-out data (a test split, meta-test tasks): not what the search ranked by (${ranked}).`));
}

async function jobPage(id, params) {
  const left = leaving();
  let job;
  try { job = await api(`/jobs/${id}`); } catch (err) { if (!left()) { render(h("h1", {}, `Job ${id}`), errorBox(err)); retryPage(err, left); } return; }
  if (left()) return;
  const spec = job.spec || {};
  const metric = spec.objective?.metrics?.[0] || spec.objective?.metric || "objective";
  const evaluatorMetrics = new Set();
  const head = h("div");
  const ranked = spec.objective?.metrics?.length > 1 ? spec.objective.metrics.join(", ") : metric;
  const drawHead = (j, held = heldOut(j.summary ?? job.summary, ranked)) => head.replaceChildren(...[
    facts([
      ["State", h("span", {}, stateTag(j.state), j.reason ? ` — ${j.reason}` : "")],
      ...(j.owner ? [["Owner", j.owner]] : []),
      ["Progress", progress(j)], ["ETA", eta(j)],
      [["QUEUED", "RUNNING"].includes(j.state) ? "Best so far" : "Best", j.best ? h("span", { id: "job-best" }, `${metric} ${fmt(j.best.value)} (${bestSource(j.best)})`,
        spec.objective?.metrics?.length > 1 ? h("span", { class: "muted" }, " — by the first objective, ties by the others in order; the Pareto front below weighs them all") : null) : "–"],
      ...(held ? [["Held-out", held]] : []),
      ["Trials", `${j.n_trials} (${Object.entries(j.trial_states).map(([k, v]) => `${k} ${v}`).join(", ") || "none"})`],
      ["Controller", spec.controller?.policy_job != null ? `${spec.controller.name} (the policy of job ${spec.controller.policy_job})` : spec.controller?.name],
      ["Space", spec.space?.name], ["Dataset", spec.dataset?.name],
      ["Evaluator", spec.evaluator?.name], ["Objective", spec.objective?.metrics?.length > 1
        ? spec.objective.metrics.map((m, i) => `${m} (${spec.objective.directions?.[i] || ""})`).join(", ")
        : `${metric} (${spec.objective?.direction || ""})`],
      ["Warm start", ((spec.warm_start?.sources || []).map((x) => (x.job_id != null ? `job ${x.job_id} (${x.name})` : `run ${x.run}`)).join(", ") || "–")
        + (spec.warm_start?.predicted ? `; ${spec.warm_start.predicted} predicted by a model of their trials` : "")],
      // why there is no Retrain best (the button was just absent)
      ...(j.retrain_refused ? [["Retraining", h("span", { id: "retrain-refused", class: "muted" }, `not offered: ${j.retrain_refused}`)]] : []),
    ]),
    // what a reader of the result must know (the time budget cut the search short, ...)
    j.warnings?.length ? h("div", { class: "warnings", id: "job-warnings", role: "note" }, h("strong", {}, "Warnings"),
      h("ul", {}, j.warnings.map((w) => h("li", {}, w)))) : null,
    h("p", {}, actions(j, () => route(), spec.evaluator?.name))].filter((n) => n != null));
  drawHead(job);
  // The evaluator's metrics: those the job's first completed trials report (the trials
  // table adds those of each page it shows).
  try {
    const sample = await api(`/jobs/${id}/trials?limit=5&state=COMPLETE`);
    for (const t of sample.data) for (const [k, v] of Object.entries(t.metrics || {})) if (typeof v === "number") evaluatorMetrics.add(k);
  } catch { /* the table shows the error */ }
  if (left()) return;
  const metricNames = [...evaluatorMetrics].slice(0, 8);
  const table = trialsTable(job, metricNames, params, left);
  const charts = h("div", { class: "grid", id: "charts" });
  const loadCharts = async () => {
    const [hist, curves] = await Promise.all([api(`/jobs/${id}/history?points=1500`), api(`/jobs/${id}/curves`)]);
    const list = [];
    if (hist.buckets.length || hist.best_so_far.length) list.push(historyChart("history", `Objective history: ${metric}`, hist, metric));
    list.push(...curvesCharts(curves));
    charts.replaceChildren(...list);
    const extra = await Promise.allSettled([api(`/jobs/${id}/parallel?top=50&sample=200`), api(`/jobs/${id}/importance`), api(`/jobs/${id}/timeline?limit=300`),
      spec.objective?.metrics?.length > 1 ? api(`/jobs/${id}/pareto?sample=1000`) : Promise.resolve(null)]);
    const [pc, imp, tl, pf] = extra.map((r) => (r.status === "fulfilled" ? r.value : null));
    if (pf && pf.front.length) {
      const names = pf.objectives.map((o) => `${o.metric} (${o.direction})`);
      // (with three or more objectives a point of the front may look dominated in the two drawn)
      const over = pf.objectives.length > 2 ? `, the front over all ${pf.objectives.length} objectives (${pf.objectives.slice(2).map((o) => o.metric).join(", ")} not drawn)` : "";
      const point = (p, front) => ({ trial: p.trial, x: p.values[0], y: p.values[1], values: p.values, front, rank: p.rank });
      charts.prepend(scatterChart("pareto", `Pareto front: ${names.slice(0, 2).join(" vs ")}${over}`,
        [...pf.front.map((p) => point(p, true)), ...pf.others.map((p) => point(p, false))], names,
        { line: pf.objectives.length === 2 }));
    }
    if (pc && pc.rows.length && pc.columns.length) charts.append(parallelChart("parallel", "Parallel coordinates: the objective, decisions and hyperparameters", pc));
    if (imp && imp.importances.length) charts.append(barChart("importance", `Importance for ${metric} (Optuna PED-ANOVA over ${imp.trials} trials)`, imp.importances.slice(0, 15).map((i) => ({ name: i.name, value: i.importance }))));
    // (it was left out without a word: nothing to explain yet)
    else if (imp && imp.trials > 0) charts.append(h("p", { class: "muted", id: "importance-none" }, `No importance chart for ${metric}: over ${imp.trials} completed trial(s), nothing explains it yet (it needs two or more with different values, and a decision or hyperparameter that varies).`));
    if (tl && tl.workers.length) charts.append(timelineChart("timeline", "Timeline: trials by worker", tl));
    const refused = extra.filter((r) => r.status === "rejected" && r.reason.status === 409);
    if (refused.length) charts.append(h("p", { class: "muted" }, `Some charts cannot be drawn: ${describe(refused[0].reason.detail ?? refused[0].reason.message)}`));
    if (!charts.children.length) charts.append(h("p", { class: "muted" }, "No charts yet: the job has no completed trial."));
    charts.setAttribute("data-loaded", "true");
  };
  render(h("nav", { "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Jobs"), " › ", `Job ${job.id}`),
    h("h1", {}, `Job ${job.id}: ${job.name}`), head,
    h("h2", {}, "Charts"), charts, table,
    h("details", {}, h("summary", {}, "Spec as stored"), h("pre", { class: "drawing" }, JSON.stringify(spec, null, 2))));
  loadCharts().catch((err) => charts.append(errorBox(err)));
  if (!["QUEUED", "RUNNING"].includes(job.state)) return;
  const ctl = new AbortController();
  stopLive = () => ctl.abort();
  let pending = null, lastCharts = Date.now(), charting = false;
  const flush = async () => {
    pending = null;
    table.refresh(); // (a trial completed since: its metrics' columns are added)
    // 4 s after the last charts were drawn, not while they load (a large job's take seconds:
    // a new load every 4 s piled up its requests on the server)
    if (!charting && Date.now() - lastCharts > 4000) {
      charting = true;
      loadCharts().catch(() => {}).finally(() => { charting = false; lastCharts = Date.now(); });
    }
  };
  // The events until the job's end; a stream that stops short (the server stopped or
  // restarted: its streams end) is followed again once the server answers, the job read
  // anew (the page stood as it was, its ETA counting down, for good).
  const follow = async () => {
    let ended = false;
    try {
      await stream(`/jobs/${id}/events`, (event, data) => {
        if (event === "job") drawHead({ ...job, ...data });
        if (event === "trial" && !pending) pending = setTimeout(flush, 400);
        if (event === "end") {
          ended = true;
          setTimeout(() => {
            if (ctl.signal.aborted) return; // (the user went elsewhere meanwhile)
            table.refresh(); loadCharts().catch(() => {}); api(`/jobs/${id}`).then(drawHead).catch(() => {});
          }, 300);
        }
      }, ctl.signal);
    } catch (err) {
      if (ctl.signal.aborted || err.status === 401 || err.status === 404) return;
    }
    if (ended || ctl.signal.aborted) return;
    setTimeout(async () => {
      if (ctl.signal.aborted) return;
      try {
        job = await api(`/jobs/${id}`, { signal: ctl.signal });
        if (ctl.signal.aborted) return;
        drawHead(job); table.refresh(); loadCharts().catch(() => {});
        if (!["QUEUED", "RUNNING"].includes(job.state)) return;
      } catch (err) {
        if (ctl.signal.aborted || err.status === 401 || err.status === 404) return;
      }
      follow();
    }, 3000);
  };
  follow();
}

// --- trial page ----------------------------------------------------------------------------
async function trialPage(id) {
  let t;
  const left = leaving();
  try { t = await api(`/trials/${id}`); } catch (err) { if (!left()) { render(h("h1", {}, `Trial ${id}`), errorBox(err)); retryPage(err, left); } return; }
  if (left()) return;
  const iv = t.intermediate_values || [];
  const keys = [...new Set(iv.flatMap((v) => Object.keys(v.values).filter((k) => typeof v.values[k] === "number")))];
  // each value on a chart of its own (a loss near 2 lay flat on an accuracy's 0-100 axis)
  const charts = keys.length ? keys.map((k) => lineChart(`intermediate-${k.replace(/[^\w-]/g, "_")}`, `${k} per step`,
    [{ name: k, points: iv.map((v) => [v.step, v.values[k]]) }], { xLabel: "step", yLabel: k })) : [h("p", { class: "muted" }, "No intermediate values.")];
  // A retraining (Retrain best, nas retrain) is a trial of the job with no objective: the
  // search did not rank it. Which rank it retrained: the job's summary.final entry of this
  // trial (once it completed), else the ranked architecture it equals.
  const retraining = (t.worker || "").endsWith(":retrain");
  let objective = fmt(t.objective);
  if (retraining) {
    let rank = null;
    try {
      const summary = (await api(`/jobs/${t.job_id}`)).summary || {};
      const entry = (summary.final || []).find((f) => f.trial === t.number);
      const same = JSON.stringify(t.architecture?.choices);
      const index = entry ? entry.rank : (summary.ranked || []).findIndex((r) => JSON.stringify(r.architecture?.choices) === same);
      if (index != null && index >= 0) rank = index + 1;
    } catch { /* said without its rank */ }
    if (left()) return;
    const acc = t.metrics?.test_accuracy;
    objective = h("span", { id: "trial-retraining" }, `${fmt(t.objective)}: a retraining of the job's ${rank ? `rank ${rank} architecture` : "architecture below"}, trained from scratch and scored on the test split${acc != null ? ` (test_accuracy ${fmt(acc)})` : ""}; it has no objective, as the search did not rank it.`);
  }
  const arch = h("div", { id: "architecture" }, h("p", { class: "muted" }, "Drawing…"));
  const json = () => {
    const url = URL.createObjectURL(new Blob([JSON.stringify(t, null, 2)], { type: "application/json" }));
    const a = h("a", { href: url, download: `job${t.job_id}-trial${t.number}.json` }); document.body.append(a); a.click(); a.remove();
  };
  render(h("nav", { "aria-label": "Breadcrumb" }, h("a", { href: "#/" }, "Jobs"), " › ", h("a", { href: `#/jobs/${t.job_id}` }, `Job ${t.job_id}`), " › ", `Trial ${t.number}`),
    h("h1", {}, `Trial ${t.number} of job ${t.job_id}${retraining ? " (a retraining)" : ""}`),
    // (a running trial showed "Seconds 0" and not when it started: the dashboard probe)
    facts([["State", stateTag(t.state)], ["Objective", objective],
      ["Started", when(t.started_at) ?? (t.state === "WAITING" ? "not yet: it waits for a worker" : null)],
      ["Finished", when(t.finished_at)],
      ["Seconds", t.state === "RUNNING" && t.started_at
        ? h("span", { class: "elapsed", "data-since": String(Date.parse(t.started_at)) }, elapsedText(Date.parse(t.started_at)))
        : t.simulated ? `${fmt(t.cost_s, 2)} (simulated: a benchmark table's training time, not measured here)` : fmt(t.cost_s, 2)],
      ["Worker", t.worker], ["Error", t.error]]),
    h("h2", {}, "Metrics"), dataTable(["metric", "value"], Object.entries(t.metrics || {})),
    h("h2", {}, "Hyperparameters"), dataTable(["name", "value"], Object.entries(t.hparams || {})),
    h("h2", {}, "Intermediate values"), h("div", { class: "grid" }, charts),
    h("h2", {}, "Architecture"), arch,
    h("p", {}, h("button", { type: "button", onclick: json }, "Download this trial (JSON)"), " ",
      h("a", { href: `#/jobs/${t.job_id}` }, "the job's exports (by rank)")));
  try {
    const d = await api(`/trials/${id}/drawing`);
    const genotype = [h("h3", {}, "Genotype"), dataTable(["decision", "choice"], Object.entries(d.genotype))];
    if (d.svg === null) { // a space with no network (a user's table): its decisions alone
      arch.replaceChildren(h("p", { class: "muted" }, `Space ${d.space} has no network to draw.`), ...genotype);
      return;
    }
    const svg = new DOMParser().parseFromString(d.svg, "image/svg+xml").documentElement;
    arch.replaceChildren(h("figure", { class: "chart", id: "drawing" }, h("figcaption", {}, `${d.space} architecture of trial ${d.trial}`), document.importNode(svg, true),
      h("details", {}, h("summary", {}, "Drawing as text"), h("pre", { class: "drawing" }, d.text))), ...genotype);
  } catch (err) { arch.replaceChildren(errorBox(err)); }
  followTrial(id, t, left);
}

// A trial that waits or runs is asked again every 2 s, and its page drawn again when it
// changed (its state, worker, an epoch's values, its result), until it has ended or the
// user went elsewhere: its page stood as first drawn.
function followTrial(id, shown, left) {
  if (!["WAITING", "RUNNING"].includes(shown.state)) return;
  const seen = JSON.stringify(shown);
  setTimeout(async () => {
    if (left()) return;
    let t;
    try { t = await api(`/trials/${id}`); } catch (err) {
      // gone with its job (404), signed out (401); else a passing fault: asked again
      if (err.status !== 404 && err.status !== 401 && !left()) followTrial(id, shown, left);
      return;
    }
    if (left()) return;
    if (JSON.stringify(t) !== seen) trialPage(id); else followTrial(id, shown, left);
  }, 2000);
}

// --- compare -------------------------------------------------------------------------------
const COMPARE_MAX = 6; // jobs on one chart (its colours and legend stay readable)

async function comparePage(params) {
  // job ids: whole numbers, each once (parseInt took "1.5" for job 1; "1,1" drew job 1 twice)
  const tokens = (params.get("jobs") || "").split(",").map((x) => x.trim()).filter(Boolean);
  const wrong = tokens.filter((x) => !/^[0-9]+$/.test(x) || Number(x) < 1 || Number(x) > 2147483647);
  const asked = [...new Set(tokens.filter((x) => !wrong.includes(x)).map(Number))];
  const ids = asked.slice(0, COMPARE_MAX);
  // the box keeps what was asked (it was rewritten to the first 6, the rest dropped unsaid)
  const input = h("input", { id: "compare-jobs", value: tokens.join(","), placeholder: "1,2", pattern: "[0-9, ]+" });
  const form = h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); location.hash = `#/compare?jobs=${input.value.replace(/\s/g, "")}`; } },
    h("label", { for: "compare-jobs" }, "Job ids (comma-separated)", input), h("button", { type: "submit" }, "Compare"));
  const out = h("div", { class: "grid", id: "compare" });
  const limited = asked.length > ids.length ? h("p", { class: "warnings", role: "note", id: "compare-limit" },
    `Compare shows at most ${COMPARE_MAX} jobs: showing ${ids.join(", ")}; left out ${asked.slice(COMPARE_MAX).join(", ")}.`) : null;
  render(h("h1", {}, "Compare jobs"), form, limited, out);
  if (wrong.length) out.append(h("p", { class: "error", role: "alert", id: "compare-wrong" }, `Not job ids: ${wrong.join(", ")} (give whole numbers from 1, separated by commas).`));
  if (!ids.length) {
    if (params.get("jobs") && !wrong.length) out.append(h("p", { class: "error", role: "alert" }, `No job ids in "${params.get("jobs")}": give numbers separated by commas, e.g. 1,2.`));
    return;
  }
  const results = await Promise.allSettled(ids.map(async (id) => ({ job: await api(`/jobs/${id}`), hist: await api(`/jobs/${id}/history?points=500`), best: await api(`/jobs/${id}/best?k=1`) })));
  const ok = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
  results.forEach((r, i) => { if (r.status === "rejected") out.append(h("p", { class: "error", role: "alert" }, `Job ${ids[i]}: ${r.reason.status === 404 ? "not found" : r.reason.message}`)); });
  if (!ok.length) return;
  for (const { job, best } of ok) if (!best.length) out.append(h("p", { class: "muted" }, `Job ${job.id}: no completed trial, nothing to plot.`));
  // Steps: the best holds until the next improvement (a line between them showed a gradual gain).
  const steps = (best) => best.flatMap((b, i) => (i ? [[b.trial, best[i - 1].value], [b.trial, b.value]] : [[b.trial, b.value]]));
  const metricOf = (job) => job.spec?.objective?.metric || "objective";
  // (jobs without a completed trial have no line: alone, they drew an empty chart)
  const plotted = ok.filter(({ hist }) => hist.best_so_far.length);
  const metrics = [...new Set(plotted.map(({ job }) => metricOf(job)))];
  // one y axis: named by the metric when the jobs share it, else each line names its own
  const shared = metrics.length === 1;
  if (plotted.length) out.prepend(lineChart("compare-best", `Best so far by trial${shared ? `: ${metrics[0]}` : ""}`, plotted.map(({ job, hist }) => ({
    name: shared ? `job ${job.id}` : `job ${job.id} (${metricOf(job)})`,
    points: steps(hist.best_so_far).concat(hist.best_so_far.length ? [[hist.n_trials - 1, hist.best_so_far.at(-1).value]] : []),
    // the same improvements are the same line, however long each job ran on after its last
    same: hist.best_so_far.length ? `${metricOf(job)}:${JSON.stringify(hist.best_so_far)}` : undefined,
  })), { xLabel: "trial", yLabel: shared ? metrics[0] : "each job's objective" }));
  // each best architecture by its decisions' choices, named (the drawing's genotype)
  // (a job without a completed trial says so: its row was dashes)
  // A finished shared-weight search's best is derived from its supernet, not its best trial
  // (one minibatch each): the row showed that trial, another architecture and score than
  // the job's own page and record.
  const derived = ({ job }) => (job.best && job.best.trial_number == null && job.summary?.best?.genotype ? job.summary.best : null);
  const genotypeText = (genotype) => Object.entries(genotype).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  const named = await Promise.all(ok.map(async ({ job, best }) => {
    if (derived({ job })) return genotypeText(derived({ job }).genotype);
    if (!best[0]) return job.n_trials ? `no completed trial (${job.n_trials} trials)` : "no trials";
    try {
      const d = await api(`/trials/${best[0].id}/drawing`);
      return genotypeText(d.genotype);
    } catch { return best[0].architecture.choices.join("."); }
  }));
  out.append(h("div", {}, h("h2", {}, "Best architectures"), dataTable(["job", "trial", "metric", "objective", "architecture"],
    ok.map(({ job, best }, i) => (derived({ job })
      ? [job.id, "derived", metricOf(job), job.best.value, named[i]]
      : [job.id, best[0]?.number ?? null, metricOf(job), best[0]?.objective ?? null, named[i]])))));
}

// --- router --------------------------------------------------------------------------------
async function route() {
  navigation += 1;
  const left = leaving();
  stopLive(); stopLive = () => {};
  delete main.dataset.route;
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  let m;
  // an id is 1..2^31-1 (0 or a longer number showed the server's validation message)
  const id = (re) => { const found = re.exec(path); return found && Number(found[1]) >= 1 && Number(found[1]) <= 2147483647 ? found : null; };
  try {
    if ((m = id(/^\/jobs\/(\d+)$/))) await jobPage(m[1], params);
    else if ((m = id(/^\/trials\/(\d+)$/))) await trialPage(m[1]);
    else if (path === "/compare") await comparePage(params);
    else if (path === "" || path === "/") await jobsPage(params);
    else render(h("h1", {}, "Not found"), h("p", { role: "alert", class: "error" }, `No page ${location.hash}: `, h("a", { href: "#/" }, "the jobs"), "."));
  } catch (err) {
    if (err.status !== 401 && !left()) render(errorBox(err));
  }
  if (!left()) {
    main.dataset.route = location.hash || "#/";
    // each page its own title, its heading's (tabs, history and screen readers told none apart)
    const heading = main.querySelector("h1")?.textContent?.trim();
    document.title = heading ? `${heading} – nas-service dashboard` : "nas-service dashboard";
    keepFocus();
  }
}

function start() {
  // The skip link moves the focus to the content; its #main was left in the address, which a
  // reload or a bookmark then showed as no page.
  document.querySelector("a.skip").addEventListener("click", (e) => { e.preventDefault(); main.focus(); main.scrollIntoView(); });
  // (the skip link's #main is no page: only #/... routes)
  window.addEventListener("hashchange", () => {
    if (!document.getElementById("login").hidden || (location.hash && !location.hash.startsWith("#/"))) return;
    route();
  });
  // A server without keys (nas serve --no-auth) answers without one.
  if (!sessionStorage.getItem(KEY) && document.body.dataset.auth !== "none") { showLogin(""); return; }
  hideLogin();
  route();
}
start();
