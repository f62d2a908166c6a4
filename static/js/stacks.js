// Stack page: the merged log of every replica, polled from the API and interleaved by time;
// each replica keeps its colour (the ANSI palette classes of berth.css).
const section = document.getElementById("stack-log");
const COLOURS = ["cyan", "yellow", "bright-cyan", "bright-yellow", "black", "bright-black",
  "cyan", "yellow"];
if (section) {
  const box = document.getElementById("stack-log-lines");
  const info = document.getElementById("stack-log-info");
  const url = section.dataset.url;
  let since = null;
  let seen = new Set();
  async function poll() {
    try {
      const query = since ? `?since=${encodeURIComponent(since)}&tail=1000` : "?tail=200";
      const response = await fetch(url + query, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      const follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      for (const line of body.lines) {
        const key = `${line.timestamp}|${line.replica}|${line.text}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const row = document.createElement("div");
        row.className = "logline";
        const who = document.createElement("span");
        who.className = `ansi-${COLOURS[line.colour % COLOURS.length]}-fg`;
        who.textContent = `${line.replica} | `;
        const text = document.createElement("span");
        text.textContent = line.text;
        row.title = line.timestamp;
        row.append(who, text);
        box.append(row);
        since = line.timestamp;
      }
      if (seen.size > 20000) seen = new Set([...seen].slice(-5000));
      if (follow) box.scrollTop = box.scrollHeight;
      info.textContent = body.errors.length ? body.errors.join("; ") : "";
    } catch (error) {
      info.textContent = `log unavailable: ${error.message}`;
    }
    setTimeout(poll, 2000);
  }
  poll();
}
