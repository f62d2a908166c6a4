// Stack page: the merged log of every replica, live from /ws/stacks/<id>/logs/ (interleaved by
// time on the server; replicas that appear later join by themselves). Each replica keeps the
// colour it was first shown with (the ANSI palette classes of berth.css). Reconnects resume each
// replica just after the last line shown (?after=CONTAINER:SEQ,…), so nothing is missed or
// repeated; a 44xx close (not signed in, not allowed, no such stack) ends it.
const section = document.getElementById("stack-log");
const COLOURS = ["cyan", "yellow", "green", "magenta", "blue", "bright-black", "bright-blue",
  "bright-magenta"];
const KEEP = 5000; // rows kept on the page; older ones are dropped
if (section) {
  const box = document.getElementById("stack-log-lines");
  const info = document.getElementById("stack-log-info");
  const serviceSelect = document.getElementById("stack-log-service");
  let socket = null, closedByUs = false, attempt = 0, retryTimer = 0;
  let lastSeq = new Map(); // container id -> seq of the last line shown
  let colourOf = new Map(); // container id -> colour index
  let replicas = [];

  function colourClass(line) {
    if (!colourOf.has(line.container)) colourOf.set(line.container, line.colour);
    return `ansi-${COLOURS[colourOf.get(line.container) % COLOURS.length]}-fg`;
  }

  function append(lines) {
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    const fragment = document.createDocumentFragment();
    for (const line of lines) {
      if (line.seq <= (lastSeq.get(line.container) ?? -1)) continue;
      lastSeq.set(line.container, line.seq);
      const row = document.createElement("div");
      row.className = line.stream === "stderr" ? "logline stderr" : "logline";
      row.title = line.timestamp;
      const who = document.createElement("span");
      who.className = colourClass(line);
      who.textContent = `${line.replica} | `;
      const text = document.createElement("span");
      text.textContent = line.text;
      row.append(who, text);
      fragment.append(row);
    }
    box.append(fragment);
    for (let extra = box.childElementCount - KEEP; extra > 0; extra--) box.firstElementChild.remove();
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function following() {
    const names = replicas.slice(0, 6).map((r) => r.replica).join(", ") + (replicas.length > 6 ? ", …" : "");
    return replicas.length ? `live · ${replicas.length} replica${replicas.length === 1 ? "" : "s"}: ${names}`
      : "live · no replicas yet";
  }

  function query() {
    const parts = [`tail=200`];
    if (serviceSelect && serviceSelect.value) parts.push(`service=${encodeURIComponent(serviceSelect.value)}`);
    const resume = [...lastSeq].map(([container, seq]) => `${container}:${seq}`);
    if (resume.length) parts.push(`after=${resume.join(",")}`);
    return parts.join("&");
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    closedByUs = false;
    socket = new WebSocket(`${scheme}://${location.host}${section.dataset.ws}?${query()}`);
    socket.addEventListener("message", (message) => {
      const data = JSON.parse(message.data);
      if (data.replicas) {
        attempt = 0;
        replicas = data.replicas;
        const current = new Set(replicas.map((r) => r.container));
        for (const container of [...lastSeq.keys()]) if (!current.has(container)) lastSeq.delete(container);
        for (const replica of replicas) if (!colourOf.has(replica.container)) colourOf.set(replica.container, replica.colour);
        info.textContent = following();
      }
      if (data.lines) append(data.lines);
      if (data.gap) info.textContent = `${following()} · ${data.gap.replica}: lines before ${data.gap.resumed_at} were trimmed`;
      if (data.error) info.textContent = data.error;
    });
    socket.addEventListener("close", (close) => {
      if (closedByUs) return;
      const why = close.reason || `code ${close.code}`;
      if (close.code >= 4400 && close.code < 4500) {
        info.textContent = `log closed: ${why}`;
        return;
      }
      const delay = Math.min(10000, 500 * 2 ** attempt++);
      info.textContent = `log disconnected (${why}); reconnecting in ${Math.ceil(delay / 1000)} s…`;
      retryTimer = setTimeout(connect, delay);
    });
  }

  function restart() {
    closedByUs = true;
    clearTimeout(retryTimer);
    if (socket) socket.close();
    box.replaceChildren();
    lastSeq = new Map();
    replicas = [];
    info.textContent = "connecting…";
    connect();
  }

  if (serviceSelect) serviceSelect.addEventListener("change", restart);

  // For tests: what the page shows, and a forced reconnect.
  window.berthStackLog = {
    rows: () => [...box.children].map((row) => row.textContent), // "replica | text"
    replicas: () => replicas.map((r) => r.replica),
    connected: () => Boolean(socket && socket.readyState === 1),
    dropConnection() { if (socket) socket.close(); }, // reconnects with after=…
  };

  connect();
}
