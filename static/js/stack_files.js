// The stack's directory in the compose editor: the folder a person picks is read in the
// browser into {relative path: text}, sent as the hidden `files_json` field. The compose file
// at the folder's top fills the editor when it is empty; .git and oversized files are left out.
const COMPOSE_NAMES = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];
const MAX_FILE = 1024 * 1024;

async function readFolder(input) {
  const files = {};
  const skipped = [];
  let compose = null;
  for (const file of input.files) {
    const parts = (file.webkitRelativePath || file.name).split("/");
    const path = parts.length > 1 ? parts.slice(1).join("/") : parts[0];
    if (path.split("/").includes(".git")) continue;
    if (file.size > MAX_FILE) { skipped.push(path); continue; }
    const text = await file.text();
    if (COMPOSE_NAMES.includes(path)) { compose = compose ?? text; continue; }
    files[path] = text;
  }
  return { files, skipped, compose };
}

function setUp(input) {
  const hidden = document.getElementById(input.dataset.filesField);
  const list = document.getElementById(input.dataset.filesList);
  input.addEventListener("change", async () => {
    const { files, skipped, compose } = await readFolder(input);
    hidden.value = JSON.stringify(files);
    const editor = document.getElementById("compose");
    if (compose !== null && editor && !editor.value.trim()) editor.value = compose;
    list.replaceChildren(...Object.keys(files).sort().map((path) => {
      const item = document.createElement("li");
      item.textContent = path;
      return item;
    }));
    list.dataset.count = String(Object.keys(files).length);
    if (skipped.length) {
      const note = document.createElement("li");
      note.className = "muted";
      note.textContent = `left out (over 1 MiB; put large data in a volume): ${skipped.join(", ")}`;
      list.append(note);
    }
  });
}

document.querySelectorAll("input[data-files-field]").forEach(setUp);
