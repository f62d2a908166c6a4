// "My account": copy buttons for what is shown once (a new API token, the TOTP key, recovery
// codes). A button's data-copy names the input or textarea holding the text.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  if (!field) return;
  const said = (text) => { if (status) status.textContent = text; };
  const fallback = () => {
    field.select();
    said(document.execCommand("copy") ? "copied" : "press Ctrl+C to copy");
  };
  if (navigator.clipboard) {
    navigator.clipboard.writeText(field.value).then(() => said("copied"), fallback);
  } else {
    fallback();
  }
});
