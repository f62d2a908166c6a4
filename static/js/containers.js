// Containers page: select all, count of selected, confirm removal.
const form = document.getElementById("bulk-form");
const all = document.getElementById("select-all");
const count = document.getElementById("selected-count");
function boxes() { return [...form.querySelectorAll('input[name="ids"]')]; }
function refresh() { if (count) count.textContent = `${boxes().filter((b) => b.checked).length} selected`; }
if (form) {
  all?.addEventListener("change", () => { for (const box of boxes()) box.checked = all.checked; refresh(); });
  form.addEventListener("change", refresh);
  form.addEventListener("submit", (event) => {
    const action = event.submitter?.value;
    const selected = boxes().filter((b) => b.checked).length;
    if (action === "remove" && !confirm(`Remove ${selected} container(s)? Running ones are stopped first.`)) {
      event.preventDefault();
    }
  });
}
