// Stats charts (uPlot): CPU %, memory against the limit, network bytes/s, for the last minutes.
// Samples come from /ws/containers/<id>/stats/ about once a second.
const section = document.getElementById("stats");
const info = document.getElementById("stats-info");
const KEEP = 300; // samples (about five minutes)
const t = [], cpu = [], mem = [], limit = [], rx = [], tx = [];
let previous = null, samples = 0;

function chart(id, label, series) {
  const element = document.getElementById(id);
  const options = {
    title: label, width: Math.max(280, element.clientWidth - 8), height: 170,
    scales: { x: { time: true } }, legend: { live: false },
    series: [{}, ...series.map(([name, color]) => ({ label: name, stroke: color, width: 1.5 }))],
    axes: [{ stroke: "#888" }, { stroke: "#888", size: 60 }],
  };
  return new window.uPlot(options, [[], ...series.map(() => [])], element);
}

const charts = {
  cpu: chart("chart-cpu", "CPU %", [["cpu %", "#1f6feb"]]),
  mem: chart("chart-mem", "Memory (MiB)", [["used", "#1a7f37"], ["limit", "#cf222e"]]),
  net: chart("chart-net", "Network (KiB/s)", [["received", "#9a6700"], ["sent", "#8250df"]]),
};

function add(sample) {
  const time = sample.time;
  if (t.length && time <= t[t.length - 1]) return;
  t.push(time); cpu.push(sample.cpu_percent);
  mem.push(sample.memory_usage / 1048576); limit.push(sample.memory_limit / 1048576);
  if (previous) {
    const seconds = Math.max(0.001, time - previous.time);
    rx.push(Math.max(0, (sample.net_rx - previous.net_rx) / 1024 / seconds));
    tx.push(Math.max(0, (sample.net_tx - previous.net_tx) / 1024 / seconds));
  } else { rx.push(0); tx.push(0); }
  previous = sample;
  for (const column of [t, cpu, mem, limit, rx, tx]) if (column.length > KEEP) column.shift();
  samples++;
}

function redraw() {
  charts.cpu.setData([t, cpu]);
  charts.mem.setData([t, mem, limit]);
  charts.net.setData([t, rx, tx]);
  const last = previous;
  if (last) {
    info.textContent = `CPU ${last.cpu_percent.toFixed(1)} % · memory ${(last.memory_usage / 1048576).toFixed(1)} MiB of ${(last.memory_limit / 1048576).toFixed(0)} MiB · ${last.pids} processes`;
  }
  section.dataset.samples = String(samples);
}

let attempt = 0;
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${section.dataset.ws}`);
  socket.addEventListener("open", () => { attempt = 0; });
  socket.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.error) { info.textContent = data.error; return; }
    for (const sample of data.samples || []) add(sample);
    redraw();
  });
  socket.addEventListener("close", (close) => {
    if (close.code >= 4400 && close.code < 4500) return;
    setTimeout(connect, Math.min(10000, 500 * 2 ** attempt++));
  });
}
window.berthStats = { samples: () => samples, points: () => t.length };
connect();
