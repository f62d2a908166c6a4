// Log viewer: /ws/containers/<id>/logs/ into a virtualised list.
//
// Lines are kept in columns (texts, stamps, seqs, stderr flags), not objects or DOM nodes, so a
// million lines stay cheap; only the rows in view (plus a margin) exist in the DOM, re-drawn on
// scroll and when lines arrive (at most once per animation frame). Follow keeps the newest line
// in view; scrolling up or pressing the button pauses. Reconnects resume with ?after=<last seq>,
// so the server sends exactly the missing lines.
import { AnsiUp } from "../vendor/ansi_up/ansi_up.js";

const ROW = 18;
const OVERSCAN = 20;
const KEEP = 1_000_000; // lines kept in the browser; older ones are dropped in bulk
const section = document.getElementById("logs");
const view = document.getElementById("log-view");
const spacer = view.querySelector(".spacer");
const rows = view.querySelector(".rows");
const info = document.getElementById("log-info");
const followButton = document.getElementById("log-follow");
const tailSelect = document.getElementById("log-tail");
const tsBox = document.getElementById("log-ts");
const streamSelect = document.getElementById("log-stream");
const searchBox = document.getElementById("log-search");
const filterBox = document.getElementById("log-filter");
const download = document.getElementById("log-download");

const ansi = new AnsiUp();
ansi.use_classes = true;

let texts = [], stamps = [], seqs = new Float64Array(1 << 16), errs = new Uint8Array(1 << 16);
let count = 0, base = 0; // base: lines dropped from the front
let shown = null; // Int32Array of matching line indexes (absolute), or null = every line
let shownCount = 0;
let following = true, socket = null, lastSeq = null, closedByUs = false, attempt = 0;
let drawQueued = false, gaps = 0, duplicates = 0, outOfOrder = 0;
const hooks = { onRender: null };

function grow(size) {
  if (size <= seqs.length) return;
  let length = seqs.length;
  while (length < size) length *= 2;
  const s = new Float64Array(length); s.set(seqs.subarray(0, count)); seqs = s;
  const e = new Uint8Array(length); e.set(errs.subarray(0, count)); errs = e;
}

function term() { return searchBox.value; }
function streamWanted() { return streamSelect.value; }
function matches(i) {
  const want = streamWanted();
  if (want && (errs[i] ? "stderr" : "stdout") !== want) return false;
  const t = term();
  if (t && filterBox.checked && texts[i].indexOf(t) === -1) return false;
  return true;
}
function filtering() { return Boolean(streamWanted() || (term() && filterBox.checked)); }

function rebuildFilter() {
  if (!filtering()) { shown = null; shownCount = 0; return; }
  shown = new Int32Array(Math.max(1024, count));
  shownCount = 0;
  for (let i = 0; i < count; i++) if (matches(i)) shown[shownCount++] = i;
}

function addToFilter(from) {
  if (shown === null) return;
  for (let i = from; i < count; i++) {
    if (!matches(i)) continue;
    if (shownCount === shown.length) { const s = new Int32Array(shown.length * 2); s.set(shown); shown = s; }
    shown[shownCount++] = i;
  }
}

function dropOldest() {
  if (count <= KEEP * 1.2) return;
  const drop = count - KEEP;
  texts = texts.slice(drop); stamps = stamps.slice(drop);
  seqs.copyWithin(0, drop, count); errs.copyWithin(0, drop, count);
  count -= drop; base += drop;
  rebuildFilter();
}

function append(lines) {
  const from = count;
  grow(count + lines.length);
  for (const line of lines) {
    if (lastSeq !== null) {
      if (line.seq === lastSeq) { duplicates++; continue; }
      if (line.seq < lastSeq) { outOfOrder++; continue; }
      if (line.seq !== lastSeq + 1) gaps++;
    }
    lastSeq = line.seq;
    texts.push(line.text); stamps.push(line.ts);
    seqs[count] = line.seq; errs[count] = line.stream === "stderr" ? 1 : 0;
    count++;
  }
  addToFilter(from);
  dropOldest();
  schedule();
}

function visibleCount() { return shown === null ? count : shownCount; }
function lineAt(position) { return shown === null ? position : shown[position]; }

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function highlight(element, needle) {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const text = node.nodeValue;
    let at = text.indexOf(needle);
    if (at === -1) continue;
    const fragment = document.createDocumentFragment();
    let from = 0;
    while (at !== -1) {
      fragment.append(text.slice(from, at));
      const mark = document.createElement("mark");
      mark.textContent = needle;
      fragment.append(mark);
      from = at + needle.length;
      at = text.indexOf(needle, from);
    }
    fragment.append(text.slice(from));
    node.replaceWith(fragment);
  }
}

function renderRow(row, i) {
  const text = texts[i];
  row.className = errs[i] ? "logline stderr" : "logline";
  row.dataset.seq = seqs[i];
  let html = text.indexOf("\x1b") === -1 ? escapeHtml(text) : ansi.ansi_to_html(text);
  // The CSP forbids inline style attributes: colours beyond the 16 classes go through CSSOM.
  const styled = html.includes(' style="');
  if (styled) html = html.replace(/ style="/g, ' data-style="');
  row.innerHTML = (tsBox.checked ? `<span class="ts">${escapeHtml(stamps[i])}</span>` : "") + html;
  if (styled) for (const span of row.querySelectorAll("[data-style]")) span.style.cssText = span.dataset.style;
  const needle = term();
  if (needle && text.includes(needle)) highlight(row, needle);
  if (hooks.onRender) hooks.onRender(seqs[i], text, stamps[i]);
}

function draw() {
  drawQueued = false;
  const total = visibleCount();
  spacer.style.height = `${total * ROW}px`;
  if (following) view.scrollTop = view.scrollHeight;
  const first = Math.max(0, Math.floor(view.scrollTop / ROW) - OVERSCAN);
  const last = Math.min(total, Math.ceil((view.scrollTop + view.clientHeight) / ROW) + OVERSCAN);
  rows.style.transform = `translateY(${first * ROW}px)`;
  const needed = last - first;
  while (rows.children.length < needed) rows.append(document.createElement("div"));
  while (rows.children.length > needed) rows.lastChild.remove();
  for (let k = 0; k < needed; k++) {
    const i = lineAt(first + k);
    const row = rows.children[k];
    // Re-render only rows whose line changed (the rest keep their DOM).
    const key = `${seqs[i]}|${tsBox.checked}|${term()}`;
    if (row.dataset.key !== key) { renderRow(row, i); row.dataset.key = key; }
  }
  info.textContent = `${count.toLocaleString()} lines${shown !== null ? `, ${shownCount.toLocaleString()} shown` : ""}` +
    `${following ? "" : " · paused"}${socket && socket.readyState === 1 ? "" : " · reconnecting"}`;
}

function schedule() {
  if (!drawQueued) { drawQueued = true; requestAnimationFrame(draw); }
}

function setFollow(on) {
  following = on;
  followButton.setAttribute("aria-pressed", String(on));
  followButton.textContent = on ? "Following" : "Paused — follow";
  schedule();
}

function connect(fresh) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = fresh || lastSeq === null ? `tail=${tailSelect.value}` : `after=${lastSeq}`;
  closedByUs = false;
  socket = new WebSocket(`${scheme}://${location.host}${section.dataset.ws}?${query}&timestamps=1`);
  socket.addEventListener("open", () => { attempt = 0; schedule(); });
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.lines) append(data.lines);
    if (data.gap) { gaps++; info.textContent = `lines before ${data.gap.resumed_at} were trimmed: download the full log`; }
    if (data.error) info.textContent = data.error;
  });
  socket.addEventListener("close", (close) => {
    schedule();
    if (closedByUs || (close.code >= 4400 && close.code < 4500)) return;
    setTimeout(() => connect(false), Math.min(5000, 200 * 2 ** attempt++));
  });
}

function restart() {
  closedByUs = true;
  if (socket) socket.close();
  texts = []; stamps = []; count = 0; base = 0; lastSeq = null; gaps = duplicates = outOfOrder = 0;
  rebuildFilter();
  for (const row of [...rows.children]) row.dataset.key = "";
  connect(true);
}

view.addEventListener("scroll", () => {
  const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - ROW;
  if (following && !atBottom) setFollow(false);
  schedule();
}, { passive: true });
view.addEventListener("keydown", (event) => { if (event.key === "End") setFollow(true); });
followButton.addEventListener("click", () => setFollow(!following));
tailSelect.addEventListener("change", restart);
tsBox.addEventListener("change", () => { download.href = `${section.dataset.download}?timestamps=${tsBox.checked ? 1 : 0}`; schedule(); });
for (const control of [streamSelect, filterBox]) control.addEventListener("change", () => { rebuildFilter(); schedule(); });
let searchTimer = 0;
searchBox.addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { rebuildFilter(); schedule(); }, 120);
});

// For tests and benchmarks: state, continuity and a forced reconnect.
window.berthLogs = {
  hooks,
  count: () => count,
  lastSeq: () => lastSeq,
  shown: () => visibleCount(),
  following: () => following,
  problems: () => ({ gaps, duplicates, outOfOrder }),
  continuous() {
    for (let i = 1; i < count; i++) if (seqs[i] !== seqs[i - 1] + 1) return false;
    return gaps === 0 && duplicates === 0 && outOfOrder === 0;
  },
  seqRange: () => (count ? [seqs[0], seqs[count - 1]] : null),
  dropConnection() { if (socket) socket.close(); }, // the viewer reconnects with after=SEQ
  connected: () => Boolean(socket && socket.readyState === 1),
  renderedSeqs: () => [...rows.children].map((r) => Number(r.dataset.seq)),
};

connect(true);
