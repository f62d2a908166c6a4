// Live page updates from /ws/events/: container status/health, operation progress, host status.
// Elements opt in with data-container-id / data-operation-id / data-host-id and, inside them,
// data-field="status|health|progress|message|…". Other modules listen to "berth:event".

const STATUS_CLASS = /\bs-[\w-]+/g;

function setBadge(element, value) {
  if (element.tagName === "PROGRESS") { element.value = Number(value) || 0; return; }
  element.textContent = value;
  if (element.classList.contains("badge")) {
    element.className = element.className.replace(STATUS_CLASS, "").trim() + " s-" + (value || "pending");
    element.hidden = value === "" || value === null;
  }
}

function update(selector, fields) {
  for (const holder of document.querySelectorAll(selector)) {
    for (const [name, value] of Object.entries(fields)) {
      if (value === undefined || value === null) continue;
      for (const element of holder.querySelectorAll(`[data-field="${name}"]`)) setBadge(element, String(value));
      if (holder.dataset.field === name) setBadge(holder, String(value));
    }
  }
}

function operationRow(event) {
  const row = document.createElement("tr");
  row.dataset.operationId = event.id;
  const cells = [
    ["a", event.kind], ["text", event.target_name], ["text", event.host || "—"],
    ["badge", event.status], ["progress", event.progress], ["message", event.message],
    ["text", ""], ["text", new Date().toLocaleTimeString()],
  ];
  for (const [kind, value] of cells) {
    const cell = document.createElement("td");
    if (kind === "a") {
      const link = document.createElement("a");
      link.href = `/operations/${event.id}/`;
      link.textContent = value;
      cell.append(link);
    } else if (kind === "badge") {
      const badge = document.createElement("span");
      badge.className = "badge"; badge.dataset.field = "status"; setBadge(badge, value);
      cell.append(badge);
    } else if (kind === "progress") {
      const bar = document.createElement("progress");
      bar.max = 1; bar.value = value; bar.dataset.field = "progress";
      bar.setAttribute("aria-label", `progress of ${event.kind} ${event.target_name}`);
      cell.append(bar);
    } else {
      if (kind === "message") cell.dataset.field = "message";
      cell.textContent = value;
    }
    row.append(cell);
  }
  return row;
}

// Operation pushes of two commits can arrive out of order: keep the newest version of each, and
// a finished operation never goes back to running.
const operationVersions = new Map();
const FINISHED = ["succeeded", "failed"];

function isStale(event) {
  if (event.type !== "operation") return false;
  const seen = operationVersions.get(event.id);
  if (seen && FINISHED.includes(seen.status)) return true;
  if (seen && event.version && seen.version >= event.version) return true;
  operationVersions.set(event.id, { version: event.version || 0, status: event.status });
  return false;
}

function apply(event) {
  if (isStale(event)) return;
  if (event.type === "container") {
    update(`[data-container-id="${event.id}"]`, {
      status: event.status, health: event.health, exit_code: event.exit_code,
      desired_state: event.desired_state, restart_count: event.restart_count,
      stop_note: event.stop_note,
    });
    // why the last stop ended in SIGKILL: shown when the exit reports it, hidden by a new start
    if (event.stop_note !== undefined) {
      for (const row of document.querySelectorAll(`[data-container-id="${event.id}"] [data-row="stop_note"]`)) {
        row.hidden = !event.stop_note;
      }
    }
  } else if (event.type === "operation") {
    const known = document.querySelector(`[data-operation-id="${event.id}"]`);
    const table = document.querySelector('#operations-table[data-live-new="1"] tbody');
    if (!known && table) {
      table.querySelector("tr.empty")?.remove();
      table.prepend(operationRow(event));
    }
    update(`[data-operation-id="${event.id}"]`, {
      status: event.status, progress: event.progress, message: event.message,
    });
    if (event.kind === "container.remove" && event.status === "succeeded") {
      for (const row of document.querySelectorAll(`tr[data-container-id="${event.target_id}"]`)) row.remove();
    }
  } else if (event.type === "host") {
    update(`[data-host-id="${event.id}"]`, { status: event.status });
  }
  document.dispatchEvent(new CustomEvent("berth:event", { detail: event }));
}

function connect(attempt = 0) {
  const indicator = document.getElementById("live-status");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/events/`);
  socket.addEventListener("open", () => {
    attempt = 0;
    if (indicator) { indicator.textContent = "live"; indicator.classList.add("on"); }
    document.dispatchEvent(new CustomEvent("berth:reconnected"));
  });
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    for (const event of data.events || []) apply(event);
  });
  socket.addEventListener("close", (close) => {
    if (indicator) { indicator.textContent = "offline"; indicator.classList.remove("on"); }
    if (close.code === 4401) return; // signed out: the next page load goes to sign-in
    setTimeout(() => connect(attempt + 1), Math.min(10000, 500 * 2 ** attempt));
  });
}

if (document.body.dataset.user) connect();

// A container's or an operation's page reads its fields again once the socket is open, the
// first time too: a change between the page's render and the subscription was never pushed to it.
document.addEventListener("berth:reconnected", async () => {
  for (const page of document.querySelectorAll("#container-page, #operation")) {
    const response = await fetch(page.dataset.stateUrl, { headers: { Accept: "application/json" } });
    if (response.ok) apply(await response.json());
  }
});

// A backup's operation page shows the download (with its checksum) once the backup is ready:
// rendered again once, when it finishes (a page rendered finished has its answer: a scheduled
// backup has no download, and reloading it would never end).
document.addEventListener("berth:event", (event) => {
  const page = document.getElementById("operation");
  const data = event.detail;
  if (!page || page.dataset.kind !== "volume.backup" || data.type !== "operation") return;
  if (data.id === page.dataset.operationId && data.status === "succeeded"
      && !page.dataset.finished && document.getElementById("download-link")?.hidden) {
    page.dataset.finished = "1";
    location.reload();
  }
});
