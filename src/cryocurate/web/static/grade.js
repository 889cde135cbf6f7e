/* The grading screen and its grid mode: one ES module, no framework, no build step.

   Why it is built this way (labeling.md §0, §2, §8):
   - A keypress never waits for the network. The grade becomes an event in an outbox kept in
     localStorage *before* the screen advances; a sender loop posts the outbox in order, drops
     an event only when the server acknowledges its request id, and retries on any failure
     (offline, server down, 5xx, expired session). Request ids make every retry idempotent, so
     a grade is stored exactly once however often it is sent.
   - The next images are loaded and decode()d ahead of time, and the swap is a DOM node swap,
     so the next item is on screen within a frame of the keypress. performance marks
     ("grade-key" → "item-visible", measure "grade-key-to-visible") let a benchmark check it.
   - What the screen shows is the server's queue overlaid with the outbox: a grade given but
     not yet acknowledged still counts (going back shows it; resuming moves past it).
*/

const cfg = JSON.parse(document.getElementById("grade-config").textContent);
const API = `${cfg.api}/campaigns/${cfg.campaign_id}`;
const OUTBOX_KEY = `cryocurate:outbox:${cfg.campaign_id}:${cfg.user_id}`;
const REFUSED_KEY = `cryocurate:refused:${cfg.campaign_id}:${cfg.user_id}`;
const PREFS_KEY = "cryocurate:grade-prefs";
const BATCH = 50; // events per POST (the API takes up to 100)
const AHEAD = 6; // images kept decoded ahead of the current item
const WINDOW = 60; // queue rows per fetch
const REFILL_AT = 25; // fetch the next window when fewer than this many items are left
const MAX_BACKOFF_MS = 4000;

const $ = (sel) => document.querySelector(sel);
let csrf = cfg.csrf_token;

// ── Preferences (metadata toggle, zoom, contrast), remembered across pages ─────────────────
const prefs = Object.assign({ meta: false, zoom: 0, contrast: 100, gridZoom: 1 },
  readJSON(PREFS_KEY, {}));
function savePrefs() { localStorage.setItem(PREFS_KEY, JSON.stringify(prefs)); }
function readJSON(key, fallback) {
  try { const v = JSON.parse(localStorage.getItem(key)); return v ?? fallback; }
  catch { return fallback; }
}

// ── Request ids ────────────────────────────────────────────────────────────────────────────
function newRequestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Plain http on another host has no randomUUID: 16 random bytes as hex do the same job.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ── The outbox ─────────────────────────────────────────────────────────────────────────────
// Always read from and written to localStorage, so two tabs of the same labeller share it and
// a tab closed while offline leaves its grades for the next page to send.
function readOutbox() { return readJSON(OUTBOX_KEY, []); }
function writeOutbox(events) {
  if (events.length) localStorage.setItem(OUTBOX_KEY, JSON.stringify(events));
  else localStorage.removeItem(OUTBOX_KEY);
}
function pushEvent(event) {
  const events = readOutbox();
  events.push(event);
  writeOutbox(events); // throws if storage is full: then the key does nothing (see onKey)
}
function removeAcknowledged(ids) {
  writeOutbox(readOutbox().filter((e) => !ids.has(e.request_id)));
}

let sending = false;
let backoff = 0;
let retryTimer = null;
let netState = "ok"; // ok | offline | login | error

function scheduleSend(delay = 0) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(sendLoop, delay);
}

async function post(events, keepalive = false) {
  return fetch(`${API}/grades`, {
    method: "POST",
    credentials: "same-origin",
    keepalive,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ grades: events.map(wire) }),
  });
}
// Only the contract's fields go on the wire; local bookkeeping (run_id) stays home.
function wire(e) {
  return { request_id: e.request_id, item_id: e.item_id, grade: e.grade, repeat: e.repeat,
           given_at: e.given_at, seconds_on_item: e.seconds_on_item };
}

async function refreshCsrf() {
  try {
    const r = await fetch("/me", { credentials: "same-origin" });
    if (r.ok) { const me = await r.json(); if (me.csrf_token) csrf = me.csrf_token; return r.status; }
    return r.status;
  } catch { return 0; }
}

async function sendLoop() {
  if (sending) return;
  sending = true;
  let failed = false;
  try {
    for (;;) {
      const pending = readOutbox();
      if (!pending.length) break;
      const batch = pending.slice(0, BATCH);
      let resp;
      try { resp = await post(batch); } catch { netState = navigator.onLine ? "error" : "offline"; failed = true; break; }
      if (resp.status === 401) { netState = "login"; failed = true; break; }
      if (resp.status === 403) {
        // A new session (logged in again in another tab) has a new CSRF token.
        const status = await refreshCsrf();
        netState = status === 401 ? "login" : "error"; failed = true; break;
      }
      if (!resp.ok) { netState = "error"; failed = true; break; }
      let body;
      try { body = await resp.json(); } catch { netState = "error"; failed = true; break; }
      const acked = new Set();
      const refused = [];
      for (const r of body.results || []) {
        if (!r.request_id) continue;
        acked.add(r.request_id);
        if (r.status === "error") refused.push({ ...r, at: new Date().toISOString() });
      }
      if (refused.length) {
        // The server will never take these (e.g. the campaign was closed): keep them where a
        // person can see them instead of retrying forever.
        localStorage.setItem(REFUSED_KEY, JSON.stringify(readJSON(REFUSED_KEY, []).concat(refused)));
      }
      if (!acked.size) { netState = "error"; failed = true; break; }
      removeAcknowledged(acked);
      netState = "ok";
      backoff = 0;
    }
  } finally {
    sending = false;
    updateIndicator();
  }
  if (failed) {
    backoff = Math.min(MAX_BACKOFF_MS, backoff ? backoff * 2 : 500);
    scheduleSend(backoff);
  }
}

// Last chance when the tab goes away: a keepalive POST outlives the page. The events stay in
// the outbox (the response may never be read); the next page resends them and gets
// "duplicate" back, which changes nothing.
function flushOnExit() {
  const pending = readOutbox();
  if (!pending.length) return;
  try { post(pending.slice(0, BATCH), true).catch(() => {}); } catch { /* nothing to do */ }
}
addEventListener("pagehide", flushOnExit);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") flushOnExit();
});
addEventListener("online", () => { backoff = 0; netState = "ok"; scheduleSend(0); updateIndicator(); });
addEventListener("offline", () => { netState = "offline"; updateIndicator(); });
addEventListener("storage", (e) => { if (e.key === OUTBOX_KEY) updateIndicator(); });
setInterval(() => { if (!sending && readOutbox().length) sendLoop(); }, 5000);

function updateIndicator() {
  const el = $("#save-state");
  if (!el) return;
  const n = readOutbox().length;
  const offline = !navigator.onLine || netState === "offline";
  let state = n ? "waiting" : "saved";
  if (n && offline) state = "offline";
  if (n && netState === "login") state = "login";
  el.dataset.state = state;
  el.dataset.pending = String(n);
  const text = el.querySelector(".save-text");
  const login = el.querySelector(".save-login");
  text.textContent = {
    saved: "All saved",
    waiting: `${n} waiting`,
    offline: `Offline · ${n} waiting`,
    login: `${n} waiting · session expired`,
  }[state];
  login.hidden = state !== "login";
  const refused = readJSON(REFUSED_KEY, []);
  el.title = refused.length
    ? `${refused.length} grade(s) refused by the server: ${refused.at(-1).error || ""}`
    : "Every grade is kept in this browser until the server confirms it.";
}

// ── API reads ──────────────────────────────────────────────────────────────────────────────
async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 401) { netState = "login"; updateIndicator(); }
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}
async function getWithRetry(url) {
  for (let wait = 500; ; wait = Math.min(MAX_BACKOFF_MS, wait * 2)) {
    try { return await getJSON(url); } catch (err) {
      setStatus(`Waiting for the server… (${err.message})`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
function setStatus(text) { const s = $("#grade-status"); if (s) s.textContent = text || ""; }

// ── Shared state: items, overlaid with the outbox ──────────────────────────────────────────
let campaign = null; // GET /campaigns/{id}
let levels = [];
let progress = { done: 0, total: 0, per_run: [] };
const items = new Map(); // "item_id:repeat" → row (with .grade kept current locally)
const keyOf = (row) => `${row.item_id}:${row.repeat ? 1 : 0}`;

// The latest outbox event per look: what the labeller last said, acknowledged or not.
function outboxLatest() {
  const latest = new Map();
  for (const e of readOutbox()) latest.set(`${e.item_id}:${e.repeat ? 1 : 0}`, e);
  return latest;
}
function addRows(rows, latest) {
  const added = [];
  for (const row of rows) {
    const k = keyOf(row);
    if (items.has(k)) { added.push(items.get(k)); continue; }
    row.serverGraded = row.grade !== null;
    const e = latest.get(k);
    if (e) {
      if (e.grade === null) row.skipped = true;
      else {
        row.grade = e.grade;
        if (!row.serverGraded && !row.repeat) bumpProgress(row.run_id);
      }
    }
    items.set(k, row);
    added.push(row);
  }
  return added;
}
function bumpProgress(runId) {
  progress.done += 1;
  const run = progress.per_run.find((r) => r.run_id === runId);
  if (run) run.done += 1;
}
function levelFor(key) {
  const k = key.length === 1 ? key.toUpperCase() : key;
  let level = levels.find((l) => String(l.key).toUpperCase() === k);
  // On the letter scale 1–5 also work (A = 1 … F = 5, the stored values).
  if (!level && /^[1-9]$/.test(k)) level = levels.find((l) => Number(l.value) === Number(k));
  return level || null;
}

// Record one grade (or a skip: level null) for a row: the outbox first, then the screen.
function give(row, level, shownAt) {
  const event = {
    request_id: newRequestId(),
    item_id: row.item_id,
    grade: level ? String(level.key) : null,
    repeat: Boolean(row.repeat),
    given_at: new Date().toISOString(),
    seconds_on_item: shownAt ? Math.round(performance.now() - shownAt) / 1000 : null,
    run_id: row.run_id,
  };
  pushEvent(event);
  if (level) {
    if (row.grade === null && !row.repeat) bumpProgress(row.run_id);
    row.grade = event.grade;
  } else {
    row.skipped = true;
  }
  // The event is safe in localStorage already; sending and the indicator wait until the next
  // item has been painted, so they never delay it.
  afterPaint(() => { updateIndicator(); scheduleSend(0); });
}

function afterPaint(fn) {
  requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = fn;
    ch.port2.postMessage(null);
  });
}

// ── Images: prefetched and decoded ahead ───────────────────────────────────────────────────
const images = new Map(); // url → {img, ready}
function image(url) {
  let entry = images.get(url);
  if (!entry) {
    const img = new Image();
    img.decoding = "async";
    img.alt = "";
    img.src = url;
    entry = { img, ready: img.decode().then(() => true, () => false) };
    images.set(url, entry);
  }
  return entry;
}
function keepImages(urls) {
  const keep = new Set(urls);
  for (const url of images.keys()) if (!keep.has(url)) images.delete(url);
  for (const url of urls) image(url);
}

// ── Zoom and contrast ──────────────────────────────────────────────────────────────────────
function applyContrast() {
  document.documentElement.style.setProperty("--grade-contrast", `${prefs.contrast / 100}`);
  const slider = $("#contrast");
  if (slider) slider.value = String(prefs.contrast);
  const out = $("#contrast-value");
  if (out) out.textContent = `${prefs.contrast}%`;
}
function setContrast(value) {
  prefs.contrast = Math.max(25, Math.min(400, Math.round(value)));
  savePrefs();
  applyContrast();
}
function applyMeta() {
  document.body.classList.toggle("show-meta", prefs.meta);
  const btn = $("#meta-toggle");
  if (btn) {
    btn.setAttribute("aria-pressed", String(prefs.meta));
    btn.textContent = prefs.meta ? "Hide metadata (M)" : "Show metadata (M)";
  }
}
function toggleMeta() { prefs.meta = !prefs.meta; savePrefs(); applyMeta(); }

function fmt(n, digits = 0) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
function metaHtml(md) {
  if (!md) return "";
  const rows = [];
  if ("resolution_a" in md) rows.push(["Resolution", md.resolution_a == null ? "—" : `${fmt(md.resolution_a, 1)} Å`]);
  if ("particle_count" in md) rows.push(["Particles", fmt(md.particle_count)]);
  if ("class_fraction" in md) rows.push(["Fraction", md.class_fraction == null ? "—" : `${fmt(md.class_fraction * 100, 1)} %`]);
  if ("pixel_size_a" in md) rows.push(["Pixel size", md.pixel_size_a == null ? "—" : `${fmt(md.pixel_size_a, 2)} Å`]);
  for (const k of ["tilt_min", "tilt_max", "tilt_step", "total_flux", "microscope_model", "camera_model"]) {
    if (k in md) rows.push([k.replace(/_/g, " "), md[k] ?? "—"]);
  }
  return rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(String(v))}</dd>`).join("");
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// ── Rubric overlay ─────────────────────────────────────────────────────────────────────────
function buildRubric() {
  const body = $("#rubric-body");
  if (!body) return;
  body.innerHTML = levels.map((l) => {
    const examples = (campaign.rubric || []).filter((r) => String(r.key) === String(l.key) || r.value === l.value);
    return `<section class="rubric-level" data-key="${esc(l.key)}">
      <h3><kbd>${esc(l.key)}</kbd> ${esc(l.name)}</h3>
      <p>${esc(l.description || "")}</p>
      <div class="rubric-examples">${examples.map((r) => r.image_url
        ? `<figure><img src="${esc(r.image_url)}" alt="${esc(r.caption || `example of ${l.key}`)}"><figcaption>${esc(r.caption || "")}</figcaption></figure>`
        : "").join("")}</div></section>`;
  }).join("");
}
function toggleRubric(show) {
  const el = $("#rubric");
  const open = show ?? el.hidden;
  el.hidden = !open;
  if (open) $("#rubric-close").focus({ preventScroll: true });
}

function levelButtons(container, onPick) {
  container.innerHTML = "";
  for (const l of levels) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "level";
    b.dataset.key = String(l.key);
    b.innerHTML = `<kbd>${esc(l.key)}</kbd><span>${esc(l.name)}</span>`;
    b.title = l.description || "";
    b.tabIndex = -1; // keys, not focus, drive the screen
    b.addEventListener("click", () => onPick(l));
    container.append(b);
  }
}

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return true;
  return target instanceof HTMLInputElement && !["range", "checkbox", "radio", "button", "submit"].includes(target.type);
}

function markVisible() {
  // After the swap: the next frame paints it; a message posted from that frame's rAF
  // callback runs once it has been painted.
  afterPaint(() => {
    performance.mark("item-visible");
    try { performance.measure("grade-key-to-visible", "grade-key", "item-visible"); } catch { /* no key mark */ }
  });
}

async function loadCampaign() {
  campaign = await getWithRetry(API);
  levels = campaign.levels || [];
  if (campaign.my_progress) progress = campaign.my_progress;
  buildRubric();
  const hint = $("#grade-keys");
  if (hint && levels.length && levels.every((l) => /^[0-9]$/.test(String(l.key)))) {
    hint.innerHTML = levels.map((l) => `<kbd>${esc(l.key)}</kbd>`).join(" ");
  }
  $("#rubric-close")?.addEventListener("click", () => toggleRubric(false));
  $("#rubric-toggle")?.addEventListener("click", () => toggleRubric());
  $("#meta-toggle")?.addEventListener("click", toggleMeta);
  const slider = $("#contrast");
  slider?.addEventListener("input", () => setContrast(Number(slider.value)));
  $("#contrast-reset")?.addEventListener("click", () => setContrast(100));
  applyContrast();
  applyMeta();
  updateIndicator();
}

// ══ The one-item-at-a-time screen ═══════════════════════════════════════════════════════════
const seq = []; // the order the labeller walks: queue rows, then laps of skipped rows
let queueCount = 0; // seq[0 .. queueCount) come from the queue, in position order
let queueEnd = false;
let firstPos = null;
let lastPos = null;
let fetching = null;
let cur = 0;
let shownAt = 0;
let lap = 0;
let doneShown = false;

async function fetchWindow(start, limit = WINDOW) {
  const q = await getWithRetry(`${API}/queue?start=${start}&limit=${limit}`);
  return q;
}

function appendQueue(rows) {
  const latest = outboxLatest();
  const fresh = rows.filter((r) => lastPos === null || r.position > lastPos);
  const added = addRows(fresh, latest);
  seq.splice(queueCount, 0, ...added);
  queueCount += added.length;
  if (added.length) {
    lastPos = added.at(-1).position;
    if (firstPos === null) firstPos = added[0].position;
  }
}

function refill() {
  if (fetching || queueEnd) return fetching;
  const start = lastPos === null ? 0 : lastPos + 1;
  fetching = fetchWindow(start).then((q) => {
    appendQueue(q.items);
    if (q.items.length < WINDOW) queueEnd = true;
  }).finally(() => { fetching = null; });
  return fetching;
}

async function loadBefore(limit = WINDOW) {
  if (firstPos === null || firstPos <= 0) return 0;
  const start = Math.max(0, firstPos - limit);
  const q = await fetchWindow(start, limit);
  const rows = q.items.filter((r) => r.position < firstPos);
  const added = addRows(rows, outboxLatest());
  seq.splice(0, 0, ...added);
  queueCount += added.length;
  cur += added.length;
  firstPos = added.length ? added[0].position : start;
  if (!added.length && start > 0) firstPos = start; // a gap of retired items: step over it
  return added.length;
}

const isOpen = (row) => row.grade === null && !row.skipped;

async function startGrading() {
  const q = await getWithRetry(`${API}/queue?limit=${WINDOW}`);
  if (q.my_progress) progress = q.my_progress;
  const skippedOnly = q.skipped_only;
  if (q.resume === null) {
    queueEnd = true;
    firstPos = lastPos = null;
    // Everything is graded: still load the tail, so Backspace can go back to change a grade.
    const len = q.queue_length || 0;
    if (len) { firstPos = len; await loadBefore(Math.min(200, WINDOW)); }
    cur = seq.length;
    return show();
  }
  appendQueue(q.items);
  if (q.items.length < WINDOW) queueEnd = true;
  // Move past what the outbox already holds (graded in an earlier tab, not yet sent).
  for (;;) {
    const i = seq.findIndex((r) => (skippedOnly ? r.grade === null : isOpen(r)));
    if (i >= 0) { cur = i; break; }
    if (queueEnd) { cur = seq.length; break; }
    await refill();
  }
  show();
}

let stageSize = 0;
addEventListener("resize", () => { stageSize = 0; });

function current() { return cur < seq.length ? seq[cur] : null; }

function show() {
  const row = current();
  const stage = $("#stage");
  const done = $("#done");
  if (!row) {
    stage.replaceChildren();
    delete stage.dataset.position;
    delete stage.dataset.itemId;
    return atEnd();
  }
  doneShown = false;
  done.hidden = true;
  $("#grader").hidden = false;
  const entry = row.tilts ? showTilt(row) : image(row.image_url);
  const img = entry.img;
  const place = () => {
    const natural = img.naturalWidth || 128;
    // The stage's size is read once (a layout read on every swap would force a reflow).
    if (!stageSize) stageSize = Math.min(stage.clientWidth || 520, stage.clientHeight || 520);
    const fit = Math.max(1, Math.floor(stageSize / natural));
    const zoom = prefs.zoom > 0 ? prefs.zoom : fit;
    img.style.width = `${natural * zoom}px`;
    $("#zoom-value").textContent = `${zoom}×`;
  };
  if (!row.tilts) {
    if (img.complete && img.naturalWidth) place();
    else entry.ready.then(() => { if (current() === row) place(); });
    stage.replaceChildren(img);
  }
  stage.dataset.itemId = String(row.item_id);
  stage.dataset.position = String(row.position);
  stage.dataset.grade = row.grade ?? "";
  $("#item-label").textContent = row.label || "";
  $("#item-meta").innerHTML = metaHtml(row.metadata);
  for (const b of document.querySelectorAll("#levels .level")) {
    b.classList.toggle("current", b.dataset.key === row.grade);
  }
  $("#item-state").textContent = row.grade ? `Graded ${row.grade}` : row.skipped ? "Skipped earlier" : "";
  renderProgress(row);
  shownAt = performance.now();
  if (img.complete && img.naturalWidth) markVisible();
  else entry.ready.then(() => { if (current() === row) markVisible(); });
  // Keep the next images decoded, and the next queue window on its way.
  const urls = [];
  for (let i = Math.max(0, cur - 2); i < Math.min(seq.length, cur + AHEAD + 1); i++) {
    urls.push(...(seq[i].tilts ? tiltPrefetch(seq[i], i === cur) : [seq[i].image_url]));
  }
  keepImages(urls);
  if (!queueEnd && queueCount - cur < REFILL_AT) refill();
  setStatus(lap ? "Skipped items come back now." : "");
}

function renderProgress(row) {
  $("#progress-all").textContent = `${fmt(progress.done)} of ${fmt(progress.total)}`;
  const bar = $("#progress-bar");
  if (bar) { bar.max = progress.total || 1; bar.value = progress.done; }
  const run = row ? progress.per_run.find((r) => r.run_id === row.run_id) : null;
  $("#progress-run").textContent = run ? `${run.run_name}: ${fmt(run.done)} of ${fmt(run.total)}` : "";
}

async function atEnd() {
  if (!queueEnd) {
    setStatus("Loading the next items…");
    $("#stage").replaceChildren();
    await refill();
    if (current()) show(); else atEnd();
    return;
  }
  // Skipped (or passed-over) looks come back once, after the queue; then the done screen.
  const open = () => seq.slice(0, queueCount).filter((r) => r.grade === null);
  if (lap === 0 && firstPos !== null && firstPos > 0) {
    // Skips from earlier sessions may sit before the window this page loaded.
    const q = await getWithRetry(`${API}/queue?limit=1`);
    for (let guard = 0; q.resume !== null && firstPos > q.resume && guard < 100; guard++) {
      await loadBefore(200);
    }
  }
  const left = open();
  if (left.length && lap === 0) {
    lap = 1;
    seq.push(...left);
    return show();
  }
  showDone(left.length);
}

function showDone(skippedLeft) {
  doneShown = true;
  renderProgress(null);
  $("#grader").hidden = true;
  const done = $("#done");
  done.hidden = false;
  done.querySelector(".done-count").textContent = `${fmt(progress.done)} of ${fmt(progress.total)} graded.`;
  const again = done.querySelector(".done-again");
  again.hidden = !skippedLeft;
  again.querySelector("span").textContent = String(skippedLeft);
  setStatus("");
}

function gradeAgain() {
  const left = seq.slice(0, queueCount).filter((r) => r.grade === null);
  if (!left.length) return;
  lap += 1;
  cur = seq.length;
  seq.push(...left);
  show();
}

function onGradeKey(level) {
  const row = current();
  if (!row) return;
  performance.mark("grade-key");
  give(row, level, shownAt);
  cur += 1;
  show();
}

function onSkip() {
  const row = current();
  if (!row) return;
  performance.mark("grade-key");
  if (row.grade === null) give(row, null, shownAt);
  cur += 1;
  show();
}

async function onBack() {
  if (doneShown) { cur = seq.length - 1; if (cur >= 0) show(); return; }
  if (cur === 0) {
    if ((await loadBefore()) === 0) return;
  }
  if (cur > 0) { cur -= 1; show(); }
}

function gridUrl(runId) { return `/campaigns/${cfg.campaign_id}/grid${runId ? `?run=${runId}` : ""}`; }

function zoomBy(step) {
  const img = $("#stage img");
  const natural = img?.naturalWidth || 128;
  const now = prefs.zoom > 0 ? prefs.zoom : Math.max(1, Math.round((parseFloat(img?.style.width) || natural) / natural));
  prefs.zoom = Math.max(1, Math.min(16, now + step));
  savePrefs();
  if (current()) show();
}

function onScreenKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  const rubricOpen = !$("#rubric").hidden;
  if (e.key === "Escape") { if (rubricOpen) { toggleRubric(false); e.preventDefault(); } return; }
  if (e.key === "?") { toggleRubric(); e.preventDefault(); return; }
  if (rubricOpen) return;
  const onRange = e.target instanceof HTMLInputElement && e.target.type === "range";
  if (doneShown) {
    if (e.key === "Enter") { gradeAgain(); e.preventDefault(); }
    else if (e.key === "Backspace" || e.key === "ArrowLeft") { onBack(); e.preventDefault(); }
    return;
  }
  const level = e.key.length === 1 ? levelFor(e.key) : null;
  if (level) { e.preventDefault(); if (!e.repeat) onGradeKey(level); return; }
  switch (e.key) {
    case "Backspace": e.preventDefault(); onBack(); return;
    case "ArrowLeft": if (onRange) return; e.preventDefault(); onBack(); return;
    case "ArrowRight": if (onRange) return; e.preventDefault(); if (current()) { cur += 1; show(); } return;
    case "s": case "S": e.preventDefault(); if (!e.repeat) onSkip(); return;
    case "+": case "=": e.preventDefault(); zoomBy(1); return;
    case "-": case "_": e.preventDefault(); zoomBy(-1); return;
    case "]": setContrast(prefs.contrast + 15); return;
    case "[": setContrast(prefs.contrast - 15); return;
    case "0": if (!levelFor("0")) setContrast(100); return;
    case "m": case "M": toggleMeta(); return;
    case "g": case "G": if (cfg.item_kind !== "tiltseries") location.href = gridUrl(current()?.run_id); return;
    default: onTiltKey(e);
  }
}

async function mainScreen() {
  await loadCampaign();
  if (!campaign.is_labeller) { setStatus("You are not a labeller of this campaign."); return; }
  levelButtons($("#levels"), (l) => onGradeKey(l));
  if (cfg.item_kind === "tiltseries") setUpTilts();
  $("#done .done-again")?.addEventListener("click", gradeAgain);
  document.addEventListener("keydown", onScreenKey);
  sendLoop();
  await startGrading();
  document.body.dataset.ready = "1";
}

// ══ Tilt series: a stack to scrub, and a montage of every tilt ═════════════════════════════
// A tilt series is judged by its tilts (blurred, dark, shifted or missing ones), so the stage
// shows one tilt at a time in angle order (↑/↓, the slider, Home/End; PageUp/PageDown by 5)
// or the montage of all of them (T; a click on a tile opens that tilt). The server renders
// both from the MRC (/tiltseries/ID/...); the current item's tilts are all fetched and
// decoded ahead, so scrubbing never waits, and the next items' 0° tilts are ready too.
const tiltInfo = new Map(); // tiltseries_id → info (tilts.json), once fetched
const tiltLoading = new Map(); // tiltseries_id → Promise
if (!prefs.tiltView) prefs.tiltView = "stack";

function loadTilts(row) {
  const t = row.tilts;
  if (tiltInfo.has(t.tiltseries_id)) return Promise.resolve(tiltInfo.get(t.tiltseries_id));
  if (!tiltLoading.has(t.tiltseries_id)) {
    tiltLoading.set(t.tiltseries_id, getJSON(t.info_url).then((info) => {
      tiltInfo.set(t.tiltseries_id, info);
      return info;
    }).catch(() => { tiltLoading.delete(t.tiltseries_id); return null; }));
  }
  return tiltLoading.get(t.tiltseries_id);
}

// Where the row is in its stack: a slot in angle order (0 = the most negative angle).
function tiltSlot(row, info) {
  if (row.tiltSlot === undefined) row.tiltSlot = Math.max(0, info.order.indexOf(info.zero));
  return row.tiltSlot;
}
function tiltUrl(info, slot) { return `${info.tilt_url}${info.order[slot]}.png`; }

function tiltPrefetch(row, isCurrent) {
  const info = tiltInfo.get(row.tilts.tiltseries_id);
  if (!info) { loadTilts(row); return [row.image_url]; }
  if (!isCurrent) return prefs.tiltView === "montage" ? [info.montage_url] : [tiltUrl(info, tiltSlot(row, info))];
  // The current item: the tilt on screen first, then outwards, so scrubbing finds them ready.
  const at = tiltSlot(row, info);
  const urls = [info.montage_url, tiltUrl(info, at)];
  for (let d = 1; d < info.count; d++) {
    if (at + d < info.count) urls.push(tiltUrl(info, at + d));
    if (at - d >= 0) urls.push(tiltUrl(info, at - d));
  }
  return urls;
}

// Put the row's tilt (or its montage) on the stage; returns the image entry shown.
function showTilt(row) {
  const stage = $("#stage");
  const info = tiltInfo.get(row.tilts.tiltseries_id);
  if (!info) {
    // Not known yet (the first item): the montage, then the stack once the angles are in.
    loadTilts(row).then((loaded) => {
      if (!loaded || current() !== row) return;
      showTilt(row);
      keepImages([...images.keys(), ...tiltPrefetch(row, true)]);
    });
  }
  const montage = !info || prefs.tiltView === "montage";
  const url = montage ? (info?.montage_url || row.image_url) : tiltUrl(info, tiltSlot(row, info));
  const entry = image(url);
  const img = entry.img;
  img.classList.add("tilt");
  const place = () => {
    if (!stageSize) stageSize = Math.min(stage.clientWidth || 520, stage.clientHeight || 520);
    const w = img.naturalWidth || 512;
    const h = img.naturalHeight || w;
    // Fit the stage (a tilt may be larger than it); + and − zoom in whole steps from there.
    const fit = Math.min(stage.clientWidth || stageSize, stage.clientHeight || stageSize) / Math.max(w, h);
    const zoom = prefs.zoom > 0 ? prefs.zoom : fit;
    img.style.width = `${Math.round(w * zoom)}px`;
    $("#zoom-value").textContent = prefs.zoom > 0 ? `${zoom}×` : "fit";
  };
  if (img.complete && img.naturalWidth) place();
  else entry.ready.then(() => { if (current() === row) place(); });
  stage.replaceChildren(img);
  stage.dataset.view = montage ? "montage" : "stack";
  renderTiltBar(row, info, montage);
  return entry;
}

function renderTiltBar(row, info, montage) {
  const bar = $("#tilt-bar");
  if (!bar) return;
  bar.hidden = false;
  const slider = $("#tilt-slider");
  const out = $("#tilt-angle");
  const stage = $("#stage");
  $("#tilt-view").textContent = montage ? "Stack (T)" : "Montage (T)";
  $("#tilt-view").setAttribute("aria-pressed", String(montage));
  if (!info) { out.textContent = "Loading the tilts…"; slider.disabled = true; return; }
  const slot = tiltSlot(row, info);
  const index = info.order[slot];
  slider.disabled = false;
  slider.max = String(info.count - 1);
  slider.value = String(slot);
  const angle = info.angles ? `${info.angles[index] >= 0 ? "+" : ""}${info.angles[index].toFixed(1)}°` : `section ${index}`;
  out.textContent = montage ? `All ${info.count} tilts` : `Tilt ${slot + 1} of ${info.count} · ${angle}`;
  stage.dataset.tilt = String(index);
  stage.dataset.tiltSlot = String(slot);
}

function setTiltSlot(slot, view = "stack") {
  const row = current();
  const info = row?.tilts ? tiltInfo.get(row.tilts.tiltseries_id) : null;
  if (!info) return;
  row.tiltSlot = Math.max(0, Math.min(info.count - 1, slot));
  if (prefs.tiltView !== view) { prefs.tiltView = view; savePrefs(); }
  showTilt(row);
}

function toggleTiltView() {
  const row = current();
  if (!row?.tilts) return;
  prefs.tiltView = prefs.tiltView === "montage" ? "stack" : "montage";
  savePrefs();
  showTilt(row);
}

function onTiltKey(e) {
  const row = current();
  if (!row?.tilts) return;
  const slot = row.tiltSlot ?? 0;
  const info = tiltInfo.get(row.tilts.tiltseries_id);
  const last = info ? info.count - 1 : 0;
  const step = { ArrowUp: 1, ArrowDown: -1, ".": 1, ",": -1, PageUp: 5, PageDown: -5 }[e.key];
  if (step !== undefined) { e.preventDefault(); setTiltSlot(slot + step); return; }
  if (e.key === "Home") { e.preventDefault(); setTiltSlot(0); return; }
  if (e.key === "End") { e.preventDefault(); setTiltSlot(last); return; }
  if (e.key === "t" || e.key === "T") { e.preventDefault(); toggleTiltView(); }
}

// A click on the montage opens the tile's tilt (tiles are laid out as tilts.json says).
function onMontageClick(e) {
  const row = current();
  const info = row?.tilts ? tiltInfo.get(row.tilts.tiltseries_id) : null;
  const img = e.target;
  if (!info || prefs.tiltView !== "montage" || !(img instanceof HTMLImageElement)) return;
  const scale = img.naturalWidth / img.clientWidth;
  const [tw, th] = info.montage.tile;
  const col = Math.floor((e.offsetX * scale) / (tw + 2));
  const line = Math.floor((e.offsetY * scale) / (th + 2));
  const slot = line * info.montage.columns + col;
  if (col < info.montage.columns && slot < info.count) setTiltSlot(slot, "stack");
}

function setUpTilts() {
  const slider = $("#tilt-slider");
  slider?.addEventListener("input", () => setTiltSlot(Number(slider.value)));
  // The slider keeps no focus: the keys drive the screen (← → would move it, not the queue).
  slider?.addEventListener("change", () => slider.blur());
  $("#tilt-view")?.addEventListener("click", toggleTiltView);
  $("#stage").addEventListener("click", onMontageClick);
}

// ══ Grid mode (cryoSPARC Select 2D style) ═══════════════════════════════════════════════════
let tiles = [];
let focus = 0;
let focusAt = 0;

function applyGridZoom() {
  document.documentElement.style.setProperty("--tile", `${96 * prefs.gridZoom}px`);
}

function renderTile(row, el) {
  el.dataset.grade = row.grade ?? "";
  el.classList.toggle("graded", row.grade !== null);
  el.querySelector(".tile-grade").textContent = row.grade ?? (row.skipped ? "skip" : "");
}

// Tiles are on screen as soon as the run's items arrive (class number and metadata, a dark
// placeholder where the image goes), and each image shows the moment it is decoded: the grid
// never sits blank while the last of a job's images is on its way. The first screenful is
// fetched eagerly and first; the rest lazily, as cryoSPARC's Select 2D fills in.
const EAGER_TILES = 48;
let gridPrefetch = null; // {runId, promise}: the first run's items, asked for with the campaign

function itemsOf(runId) {
  const url = `${API}/runs/${runId}/items`;
  if (gridPrefetch && gridPrefetch.runId === runId) {
    const { promise } = gridPrefetch;
    gridPrefetch = null;
    return promise.then((body) => body ?? getWithRetry(url));
  }
  return getWithRetry(url);
}

function imagesStatus() {
  const done = tiles.filter((t) => !t.el.classList.contains("loading")).length;
  $("#grid").dataset.loaded = String(done);
  const first = Math.min(tiles.length, EAGER_TILES); // the lazy rest load as they scroll in
  const status = $("#grade-status");
  if (done < first) setStatus(`Loading images… ${done} of ${tiles.length}`);
  else if (status?.textContent.startsWith("Loading")) setStatus("");
}

async function loadGrid(runId) {
  const grid = $("#grid");
  grid.replaceChildren();
  grid.dataset.loaded = "0";
  setStatus("Loading…");
  const body = await itemsOf(runId);
  const latest = outboxLatest();
  const frag = document.createDocumentFragment();
  tiles = addRows(body.items, latest).map((row, i) => {
    const el = document.createElement("figure");
    el.className = "tile loading";
    el.dataset.itemId = String(row.item_id);
    el.dataset.index = String(i);
    const img = document.createElement("img");
    img.alt = row.label || "";
    img.decoding = "async";
    img.width = 96;
    img.height = 96;
    if (i < EAGER_TILES) { img.loading = "eager"; img.fetchPriority = i < 12 ? "high" : "auto"; }
    else img.loading = "lazy";
    const shown = () => { el.classList.remove("loading"); el.classList.add("loaded"); imagesStatus(); };
    const failed = () => { el.classList.remove("loading"); el.classList.add("broken"); imagesStatus(); };
    img.addEventListener("load", () => { img.decode().then(shown, shown); }, { once: true });
    img.addEventListener("error", failed, { once: true });
    img.src = row.image_url;
    const cap = document.createElement("figcaption");
    cap.innerHTML = `<span class="tile-grade"></span><span class="tile-label">${esc(row.metadata?.class_index ?? "")}</span>`
      + `<dl class="tile-meta meta">${metaHtml(row.metadata)}</dl>`;
    el.append(img, cap);
    el.addEventListener("click", () => setFocus(i));
    frag.append(el);
    renderTile(row, el);
    return { row, el };
  });
  grid.append(frag);
  const firstOpen = tiles.findIndex((t) => t.row.grade === null);
  setFocus(firstOpen >= 0 ? firstOpen : 0);
  if (tiles.length) imagesStatus();
  else setStatus("No items of this run in your queue.");
  renderProgress({ run_id: runId });
  document.body.dataset.ready = "1";
}

function setFocus(i) {
  if (!tiles.length) return;
  focus = Math.max(0, Math.min(tiles.length - 1, i));
  for (const t of tiles) t.el.classList.remove("focus");
  const t = tiles[focus];
  t.el.classList.add("focus");
  t.el.scrollIntoView({ block: "nearest" });
  $("#grid").dataset.focus = String(focus);
  focusAt = performance.now();
}

function columns() {
  if (tiles.length < 2) return 1;
  const top = tiles[0].el.offsetTop;
  const i = tiles.findIndex((t) => t.el.offsetTop !== top);
  return i < 0 ? tiles.length : i;
}

function gridGrade(level) {
  const t = tiles[focus];
  if (!t) return;
  if (level === null && t.row.grade !== null) { setFocus(focus + 1); return; }
  give(t.row, level, focusAt);
  renderTile(t.row, t.el);
  renderProgress(t.row);
  setFocus(focus + 1);
}

function onGridKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
  const rubricOpen = !$("#rubric").hidden;
  if (e.key === "Escape") { if (rubricOpen) toggleRubric(false); return; }
  if (e.key === "?") { toggleRubric(); e.preventDefault(); return; }
  if (rubricOpen) return;
  const onRange = e.target instanceof HTMLInputElement && e.target.type === "range";
  const level = e.key.length === 1 ? levelFor(e.key) : null;
  if (level) { e.preventDefault(); if (!e.repeat) gridGrade(level); return; }
  if (onRange && e.key.startsWith("Arrow")) return;
  switch (e.key) {
    case "ArrowRight": e.preventDefault(); setFocus(focus + 1); return;
    case "ArrowLeft": case "Backspace": e.preventDefault(); setFocus(focus - 1); return;
    case "ArrowDown": e.preventDefault(); setFocus(focus + columns()); return;
    case "ArrowUp": e.preventDefault(); setFocus(focus - columns()); return;
    case "Home": e.preventDefault(); setFocus(0); return;
    case "End": e.preventDefault(); setFocus(tiles.length - 1); return;
    case "s": case "S": e.preventDefault(); gridGrade(null); return;
    case "+": case "=": prefs.gridZoom = Math.min(4, prefs.gridZoom + 0.5); savePrefs(); applyGridZoom(); return;
    case "-": case "_": prefs.gridZoom = Math.max(0.5, prefs.gridZoom - 0.5); savePrefs(); applyGridZoom(); return;
    case "]": setContrast(prefs.contrast + 15); return;
    case "[": setContrast(prefs.contrast - 15); return;
    case "0": if (!levelFor("0")) setContrast(100); return;
    case "m": case "M": toggleMeta(); return;
    case "g": case "G": location.href = `/campaigns/${cfg.campaign_id}/grade`; return;
    default:
  }
}

async function mainGrid() {
  // The run's items are asked for with the campaign, not after it: one round trip less
  // before the first tiles.
  if (cfg.run_id !== undefined && cfg.run_id !== null) {
    // A plain read: if it fails (not a labeller, server away), loadGrid asks again with retries.
    const promise = getJSON(`${API}/runs/${cfg.run_id}/items`).catch(() => null);
    gridPrefetch = { runId: Number(cfg.run_id), promise };
  }
  await loadCampaign();
  if (!campaign.is_labeller) { setStatus("You are not a labeller of this campaign."); return; }
  applyGridZoom();
  renderProgress(null);
  const picker = $("#run-picker");
  const runs = campaign.runs || [];
  picker.innerHTML = runs.map((r) => `<option value="${r.run_id}">${esc(r.run_name)}${r.lab ? ` (${esc(r.lab)})` : ""}</option>`).join("");
  let runId = cfg.run_id ?? runs[0]?.run_id;
  if (runId !== undefined && runId !== null) picker.value = String(runId);
  picker.addEventListener("change", () => {
    runId = Number(picker.value);
    history.replaceState(null, "", `/campaigns/${cfg.campaign_id}/grid?run=${runId}`);
    loadGrid(runId);
    picker.blur();
  });
  levelButtons($("#levels"), (l) => gridGrade(l));
  document.addEventListener("keydown", onGridKey);
  sendLoop();
  if (runId !== undefined && runId !== null) await loadGrid(Number(runId));
}

(cfg.mode === "grid" ? mainGrid() : mainScreen()).catch((err) => {
  setStatus(`Something went wrong: ${err.message}. Your grades are kept in this browser.`);
  throw err;
});
