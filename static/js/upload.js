// Image archive upload: the browser's upload progress, then the import operation's progress
// (live, from the events socket).
const form = document.getElementById("upload-form");
const uploadBar = document.getElementById("upload-progress");
const uploadText = document.getElementById("upload-text");
const importBar = document.getElementById("import-progress");
const importText = document.getElementById("import-text");
let operation = null;
// The import may report before the upload's response names its operation: the newest event of
// every operation is kept until then (live.js drops stale ones).
const latest = new Map();

function showImport(data) {
  importBar.value = data.progress;
  importText.textContent = `${data.status}: ${data.message || ""}`;
  importBar.dataset.status = data.status;
}

document.addEventListener("berth:event", (event) => {
  const data = event.detail;
  if (data.type !== "operation") return;
  if (data.id === operation) showImport(data);
  else if (operation === null) latest.set(data.id, data);
});

form?.addEventListener("submit", (event) => {
  event.preventDefault();
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.setRequestHeader("Accept", "application/json");
  request.upload.addEventListener("progress", (progress) => {
    if (progress.lengthComputable) {
      uploadBar.value = progress.loaded / progress.total;
      uploadText.textContent = `${Math.round(progress.loaded / 1024)} of ${Math.round(progress.total / 1024)} KiB`;
    }
  });
  request.addEventListener("load", () => {
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
    if (request.status === 202) {
      uploadBar.value = 1;
      uploadText.textContent = "uploaded";
      operation = body.operation;
      importText.innerHTML = "";
      const link = document.createElement("a");
      link.href = body.url; link.textContent = "pending: follow the operation";
      importText.append(link);
      importBar.dataset.operation = operation;
      if (latest.has(operation)) showImport(latest.get(operation));
      latest.clear();
    } else {
      const errors = body.errors ? Object.entries(body.errors).map(([k, v]) => `${k}: ${v.join(" ")}`).join("; ") : `error ${request.status}`;
      uploadText.textContent = errors;
    }
  });
  request.addEventListener("error", () => { uploadText.textContent = "the upload failed: check the connection and try again"; });
  request.send(new FormData(form));
});
